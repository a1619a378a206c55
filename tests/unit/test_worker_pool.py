"""The worker pool never blocks the raylet's event loop on a worker that is slow to exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rayredis.raylet.worker_pool import WorkerPool


def _pool(tmp_path: Path) -> WorkerPool:
    (tmp_path / "logs").mkdir()
    (tmp_path / "pids").mkdir()
    return WorkerPool(str(tmp_path), "127.0.0.1:1", b"n" * 16, {})


def _child(tmp_path: Path, pool: WorkerPool, wid: bytes, code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code])
    (tmp_path / "pids" / str(proc.pid)).write_text("worker")
    pool.procs[wid] = proc
    return proc


def test_a_disconnected_worker_that_lingers_is_not_waited_for_and_is_killed_after_the_grace(
        tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    proc = _child(tmp_path, pool, b"w1", "import time; time.sleep(60)")
    pool.EXIT_GRACE_S = 0.3
    pool.exited(b"w1")  # returns without waiting (it used to wait up to 2 s, on the event loop)
    assert b"w1" in pool.leaving and proc.poll() is None
    pool.reap()  # within the grace: left alone
    assert proc.poll() is None
    time.sleep(0.35)
    pool.reap()  # past the grace: SIGKILLed
    proc.wait(timeout=10)
    pool.reap()  # collected: the record is gone
    assert pool.leaving == {} and proc.returncode == -9
    assert not (tmp_path / "pids" / str(proc.pid)).exists()


def test_a_worker_that_exits_by_itself_is_collected_without_a_kill(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    proc = _child(tmp_path, pool, b"w2", "import time; time.sleep(0.2)")
    pool.exited(b"w2")
    proc.wait(timeout=10)
    pool.reap()
    assert pool.leaving == {} and proc.returncode == 0
    assert not (tmp_path / "pids" / str(proc.pid)).exists()


def test_stop_all_kills_lingering_workers_too(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    proc = _child(tmp_path, pool, b"w3", "import time; time.sleep(60)")
    pool.exited(b"w3")
    pool.stop_all()
    assert proc.poll() == -9 and pool.leaving == {} and pool.procs == {}
    assert os.listdir(tmp_path / "pids") == []


def test_the_count_of_failed_starts_is_a_streak_that_a_connected_worker_resets(tmp_path: Path) -> None:
    pool = _pool(tmp_path)
    for n in range(3):
        proc = _child(tmp_path, pool, b"f%d" % n, "raise SystemExit(3)")
        pool.starting.add(b"f%d" % n)
        proc.wait(timeout=10)
    assert sorted(pool.reap()) == [b"f0", b"f1", b"f2"] and pool.startup_failures == 3
    ok = _child(tmp_path, pool, b"ok", "import time; time.sleep(60)")
    pool.starting.add(b"ok")
    pool.registered(b"ok")  # (it connected)
    assert pool.startup_failures == 0
    pool.stop_all()
    assert ok.poll() == -9
