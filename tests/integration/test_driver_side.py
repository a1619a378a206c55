"""Driver-side behaviour (issue 8): ``shutdown()`` leaves the program's own child processes alone."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any


def test_shutdown_reaps_only_the_processes_rayredis_started(ray_start_regular: Any) -> None:
    import rayredis as ray

    mine = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
    assert ray.get(ray.remote(lambda: 1).remote(), timeout=60) == 1
    os.waitid(os.P_PID, mine.pid, os.WEXITED | os.WNOWAIT)  # it has exited, and is still to be collected
    ray.shutdown()  # collected the exited child too before the change: its status was lost (0)
    assert mine.wait(timeout=60) == 7


def test_worker_output_files_rotate(monkeypatch: Any) -> None:
    import glob

    import rayredis as ray
    from tests.conftest import _shutdown_checked

    monkeypatch.setenv("RAYREDIS_LOG_ROTATION_MAX_BYTES", str(64 * 1024))
    monkeypatch.setenv("RAYREDIS_LOG_ROTATION_BACKUP_COUNT", "2")
    ctx = ray.init(num_cpus=1)
    try:
        @ray.remote
        def chatty() -> str:
            for i in range(4000):
                print(f"line {i} " + "x" * 100)  # ~0.45 MB in all: seven times the cap
            return "done"

        ray.get(chatty.remote(), timeout=120)
        outs = glob.glob(os.path.join(ctx["session_dir"], "logs", "worker-*.out*"))
        rotated = [p for p in outs if p.endswith(".out.1")]
        assert rotated, outs  # one ever-growing file before the change
        assert not [p for p in outs if p.endswith(".out.3")]  # two backups kept
        for p in outs:
            assert os.path.getsize(p) <= 2 * 64 * 1024 + 8192, p  # the cap (checked every cap-size of output)
    finally:
        _shutdown_checked()


def _fails(tag: str) -> None:
    raise ValueError(f"never read {tag}")


def _identity(x: Any) -> Any:
    return x


def test_failed_results_never_read_are_reported(ray_start_regular: Any, capfd: Any,
                                                 monkeypatch: Any) -> None:
    import gc
    import time

    import rayredis as ray

    fails = ray.remote(_fails)
    seen = ""

    def wait_for(fragment: str) -> bool:
        nonlocal seen
        deadline = time.monotonic() + 60
        while fragment not in seen and time.monotonic() < deadline:
            time.sleep(0.1)
            seen += capfd.readouterr().err
        return fragment in seen

    fails.remote("dropped-at-once")  # the ref goes before the task fails
    assert wait_for("never read dropped-at-once"), seen  # nothing was printed before the change
    assert "Unhandled error (suppress with 'RAY_IGNORE_UNHANDLED_ERRORS=1'): ray::_fails() (pid=" in seen
    held = fails.remote("held")
    ray.wait([held], timeout=60)
    time.sleep(0.5)
    del held  # the ref goes after the task failed
    gc.collect()
    assert wait_for("never read held"), seen
    read = fails.remote("read")
    try:
        ray.get(read, timeout=60)
    except ValueError:
        pass
    passed_on = fails.remote("passed on")
    downstream = ray.remote(_identity).remote(passed_on)
    del read, passed_on
    monkeypatch.setenv("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    suppressed = fails.remote("suppressed")
    ray.wait([suppressed, downstream], num_returns=2, timeout=60)
    del suppressed
    monkeypatch.delenv("RAY_IGNORE_UNHANDLED_ERRORS")
    del downstream  # its error (the upstream's, wrapped) was never read: reported
    assert wait_for("ray::_identity() (pid="), seen
    assert "never read read" not in seen and "never read suppressed" not in seen
    assert seen.count("Unhandled error") == 3, seen
