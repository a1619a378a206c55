"""``tqdm_ray`` bars in a task and an actor on a real cluster are drawn by the driver, not printed."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest

import rayredis as ray
from rayredis.experimental import tqdm_ray


@ray.remote
def crunch(n: int) -> int:
    for _ in tqdm_ray.tqdm(range(n), desc="crunching", flush_interval_s=0):
        pass
    print("done crunching", flush=True)
    return n


@ray.remote
class Loader:
    def load(self, n: int) -> int:
        bar = tqdm_ray.tqdm(total=n, desc="loading", unit="files", flush_interval_s=0)
        for _ in range(n):
            bar.update(1)
        bar.close()
        return n


def test_bars_of_a_task_and_an_actor_render_at_the_driver(ray_start_regular: Any,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    tqdm_ray._manager = tqdm_ray._BarManager(out=out)
    try:
        assert ray.get(crunch.remote(5)) == 5
        assert ray.get(Loader.remote().load.remote(3)) == 3
        deadline = time.monotonic() + 30
        while not ("5/5" in out.getvalue() and "3/3" in out.getvalue()):  # (forwarded output is asynchronous)
            assert time.monotonic() < deadline, f"the bars never finished at the driver: {out.getvalue()!r}"
            time.sleep(0.05)
        lines = out.getvalue().splitlines()
        crunching = [ln for ln in lines if "crunching: 100%|" in ln]
        assert crunching and crunching[-1].startswith("(pid=") and "5/5" in crunching[-1]
        assert any("loading: 100%|" in ln and "3/3 " in ln and "files/s" in ln for ln in lines)
        assert tqdm_ray.instance().bars == {}  # both closed
        deadline = time.monotonic() + 30
        printed = ""
        while "done crunching" not in printed:  # the task's ordinary print is still forwarded
            assert time.monotonic() < deadline
            time.sleep(0.05)
            printed += capsys.readouterr().out
        assert tqdm_ray.RAY_TQDM_MAGIC not in printed
    finally:
        tqdm_ray._manager = None
