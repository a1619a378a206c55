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
