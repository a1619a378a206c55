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
