"""init() and ``rayredis stop`` sweep the /dev/shm segments of this user's sessions whose processes
are all gone, and nothing else."""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayredis import config
from rayredis._private import process, session
from rayredis.cli import main as cli


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "rr"
    monkeypatch.setattr(config, "_config", config.Config.from_env(temp_dir=str(root)))
    return root


@pytest.fixture
def segments() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for p in made:
        if os.path.exists(p):
            os.unlink(p)


def _segment(made: list[str], session_dir: str, name: str, uid: int = -1) -> str:
    path = os.path.join(session.SHM_DIR, session.session_shm_tag(session_dir) + name)
    with open(path, "wb") as f:
        f.write(b"x")
    if uid >= 0:
        os.chown(path, uid, -1)
    made.append(path)
    return path


def _age(session_dir: str) -> None:
    """As if its PID records last changed long ago (a fresh session may be restarting a process)."""
    old = time.time() - 2 * session.SWEEP_IDLE_S
    os.utime(os.path.join(session_dir, "pids"), (old, old))


def test_sweep_removes_only_segments_of_sessions_whose_processes_are_gone(
        temp_dir: Path, segments: list[str]) -> None:
    dead, live, fresh = (session.new_session_dir() for _ in range(3))
    gone = process.spawn(["true"], dead, "raylet", "true")
    gone.wait()
    running = process.spawn(["sleep", "60"], live, "raylet", "sleep")
    try:
        _age(dead)
        _age(live)  # (fresh: its records just changed)
        leftover = _segment(segments, dead, "obj1")
        kept = [_segment(segments, live, "obj2"), _segment(segments, fresh, "obj3")]
        if os.geteuid() == 0:  # another user's segment with the dead session's tag stays too
            kept.append(_segment(segments, dead, "theirs", uid=pwd.getpwnam("nobody").pw_uid))
        assert session.sweep_dead_sessions_shm() == 1
        assert not os.path.exists(leftover)
        assert all(os.path.exists(p) for p in kept)
    finally:
        running.kill()
        running.wait()


def test_rayredis_stop_sweeps(temp_dir: Path, segments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    dead = session.new_session_dir()  # an init() cluster whose driver was SIGKILLed: not registered
    _age(dead)
    leftover = _segment(segments, dead, "obj")
    assert cli.main(["stop"]) == 0
    assert not os.path.exists(leftover)
    assert "Did not find any active rayredis processes" in capsys.readouterr().out


def test_untrusted_temp_dir_is_not_swept(temp_dir: Path, segments: list[str]) -> None:
    dead = session.new_session_dir()
    _age(dead)
    leftover = _segment(segments, dead, "obj")
    os.chmod(temp_dir, 0o777)
    assert session.sweep_dead_sessions_shm() == 0
    assert os.path.exists(leftover)
