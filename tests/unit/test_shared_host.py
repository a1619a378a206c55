"""Shared hosts: a per-user 0700 temp dir, and nothing another local user prepared is trusted.

The tests that play the other user run as root (as CI does) and use ``nobody``: files are handed to
it with chown, its processes started with ``Popen(user=...)``.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rayredis import config
from rayredis._private import process, session, trusted
from rayredis.cli import sessions

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as a second local user (nobody)")


def _nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "rr"
    monkeypatch.setattr(config, "_config", config.Config.from_env(temp_dir=str(root)))
    return root


@pytest.fixture
def sleeper() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_default_temp_dir_is_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAYREDIS_TEMP_DIR")
    assert config.Config.from_env().temp_dir == f"/tmp/rayredis-{os.geteuid()}"
    monkeypatch.setenv("RAYREDIS_TEMP_DIR", "/elsewhere")
    assert config.Config.from_env().temp_dir == "/elsewhere"


def test_temp_dir_and_sessions_are_created_private(temp_dir: Path) -> None:
    d = session.new_session_dir()
    for p in (temp_dir, Path(d), Path(d) / "pids", Path(d) / "logs"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700, p
    session.write_current_cluster(session.ClusterFile("127.0.0.1:1", "pw", d))
    assert stat.S_IMODE(Path(session.current_cluster_path()).stat().st_mode) == 0o600
    assert session.read_current_cluster() == session.ClusterFile("127.0.0.1:1", "pw", d)


@needs_root
def test_temp_dir_prepared_by_another_user_is_refused(temp_dir: Path) -> None:
    temp_dir.mkdir(mode=0o700)
    (temp_dir / "current_cluster").write_text(json.dumps({"address": "127.0.0.1:1", "password": "theirs",
                                                          "session_dir": "/x"}))
    os.chown(temp_dir, _nobody(), -1)
    with pytest.raises(trusted.UntrustedPathError, match="belongs to uid .*RAYREDIS_TEMP_DIR"):
        session.new_session_dir()
    with pytest.raises(trusted.UntrustedPathError, match="rayredis temp dir"):
        session.read_current_cluster()
    with pytest.raises(trusted.UntrustedPathError):
        sessions.registered()


@needs_root
def test_current_cluster_of_another_user_is_refused(temp_dir: Path) -> None:
    session.write_current_cluster(session.ClusterFile("127.0.0.1:1", "pw", "/x"))
    os.chown(session.current_cluster_path(), _nobody(), -1)
    with pytest.raises(trusted.UntrustedPathError, match="current-cluster file .* belongs to uid"):
        session.read_current_cluster()


def test_group_writable_current_cluster_is_refused(temp_dir: Path) -> None:
    session.write_current_cluster(session.ClusterFile("127.0.0.1:1", "pw", "/x"))
    os.chmod(session.current_cluster_path(), 0o620)
    with pytest.raises(trusted.UntrustedPathError, match="chmod go-w"):
        session.read_current_cluster()


def test_writable_temp_dir_is_refused(temp_dir: Path) -> None:
    temp_dir.mkdir()
    os.chmod(temp_dir, 0o777)
    with pytest.raises(trusted.UntrustedPathError, match="mode 0777"):
        session.new_session_dir()


@needs_root
def test_registry_entry_of_another_user_is_refused(temp_dir: Path) -> None:
    d = session.new_session_dir()
    sessions.register(sessions.CliSession(d, sessions.HEAD, "127.0.0.1:1"))
    assert [e.session_dir for e in sessions.registered()] == [d]
    (entry,) = Path(sessions.registry_dir()).iterdir()
    os.chown(entry, _nobody(), -1)
    with pytest.raises(trusted.UntrustedPathError, match="registry entry"):
        sessions.registered()


@needs_root
def test_pid_record_of_another_user_is_refused(temp_dir: Path, sleeper: list[subprocess.Popen[bytes]]) -> None:
    d = session.new_session_dir()
    p = process.spawn(["sleep", "60"], d, "raylet", "sleep")
    sleeper.append(p)
    os.chown(os.path.join(d, "pids", str(p.pid)), _nobody(), -1)
    with pytest.raises(trusted.UntrustedPathError, match="PID record"):
        process.stop_recorded(d, grace_s=0.1)
    assert p.poll() is None


@needs_root
def test_process_of_another_user_is_never_signalled(temp_dir: Path,
                                                    sleeper: list[subprocess.Popen[bytes]]) -> None:
    d = session.new_session_dir()
    theirs = subprocess.Popen(["sleep", "60"], user=_nobody())
    sleeper.append(theirs)
    process.record_pid(d, theirs.pid, "raylet", cmdline=["sleep", "60"])
    (r,) = process.recorded(d)
    assert not process.is_alive(r)
    assert process.stop_recorded(d, grace_s=0.1) == (0, 0)
    assert theirs.poll() is None


def test_process_with_another_command_line_is_never_signalled(
        temp_dir: Path, sleeper: list[subprocess.Popen[bytes]]) -> None:
    d = session.new_session_dir()
    other = subprocess.Popen(["sleep", "61"])
    sleeper.append(other)
    process.record_pid(d, other.pid, "raylet", cmdline=["sleep", "60"])
    assert process.stop_recorded(d, grace_s=0.1) == (0, 0)
    assert other.poll() is None
    # The process the record was made for is stopped, as before.
    mine = process.spawn(["sleep", "60"], d, "raylet", "sleep")
    sleeper.append(mine)
    assert process.stop_recorded(d, grace_s=1.0) == (1, 1)
    assert mine.wait() != 0
