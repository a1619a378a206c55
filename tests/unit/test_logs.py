"""Log files are size-capped: ``.log`` files through RotatingFileHandler, a worker's ``.out``/``.err``
through FdRotator (the descriptor is moved to a fresh file)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from rayredis._private import logs
from rayredis.config import Config


def test_fd_rotator_moves_the_descriptor_to_a_fresh_file(tmp_path: Path) -> None:
    path = tmp_path / "worker-x.out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        rot = logs.FdRotator(fd, max_bytes=100, backup_count=2, check_every=10)
        assert rot.path == str(path)
        for i in range(5):  # each round is over the cap: rotates every time
            os.write(fd, f"{i}".encode() * 150)
            rot.wrote(150)
        os.write(fd, b"last")
        assert path.read_bytes() == b"last"
        assert (tmp_path / "worker-x.out.1").read_bytes() == b"4" * 150
        assert (tmp_path / "worker-x.out.2").read_bytes() == b"3" * 150
        assert not (tmp_path / "worker-x.out.3").exists()  # only backup_count old files are kept
    finally:
        os.close(fd)


def test_fd_rotator_leaves_pipes_and_small_files_alone(tmp_path: Path) -> None:
    r, w = os.pipe()
    try:
        rot = logs.FdRotator(w, max_bytes=1, backup_count=1, check_every=1)
        assert rot.path == ""
        rot.wrote(1000)  # nothing to rotate, no error
    finally:
        os.close(r)
        os.close(w)
    path = tmp_path / "small.out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"x" * 10)
        logs.FdRotator(fd, max_bytes=100, backup_count=1, check_every=1).wrote(10)
        assert not (tmp_path / "small.out.1").exists()
    finally:
        os.close(fd)


def test_process_logs_rotate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "get_config", lambda: Config(log_rotation_max_bytes=2000, log_rotation_backup_count=2))
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        path = logs.setup_process_logging(str(tmp_path), "raylet")
        for i in range(200):
            logging.getLogger("t").warning("line %d %s", i, "x" * 40)
        for h in root.handlers:
            h.flush()
        assert os.path.getsize(path) <= 2000 and os.path.exists(path + ".1") and os.path.exists(path + ".2")
        assert not os.path.exists(path + ".3")
    finally:
        for h in root.handlers:
            h.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
