"""The driver's bar manager and the plain renderer of ``rayredis.experimental.tqdm_ray`` (no cluster)."""

from __future__ import annotations

import io
import json
import os

from rayredis.experimental import tqdm_ray


def _state(**kw: object) -> dict[str, object]:
    s: dict[str, object] = {"__magic_token__": tqdm_ray.RAY_TQDM_MAGIC, "x": 0, "pos": 0, "desc": "work",
                            "total": 4, "unit": "it", "ip": "10.0.0.9", "pid": 42, "uuid": "u1", "closed": False}
    s.update(kw)
    return s


def test_state_lines_become_bars_prefixed_by_their_process_and_end_when_closed(monkeypatch: object) -> None:
    out = io.StringIO()
    mgr = tqdm_ray._BarManager(out=out)
    tqdm_ray._manager = mgr
    try:
        assert not tqdm_ray.handle_line("an ordinary line")
        assert tqdm_ray.handle_line(json.dumps(_state(x=1)))
        assert "u1" in mgr.bars
        assert tqdm_ray.handle_line(json.dumps(_state(x=4, closed=True)))
        assert mgr.bars == {}
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("(pid=42, ip=10.0.0.9) work:  25%|") and lines[0].count("1/4") == 1
        assert "100%|" in lines[-1] and "4/4" in lines[-1]
    finally:
        tqdm_ray._manager = None


def test_a_driver_side_bar_counts_an_iterable() -> None:
    out = io.StringIO()
    tqdm_ray._manager = tqdm_ray._BarManager(out=out)
    try:
        bar = tqdm_ray.tqdm(range(3), desc="local", flush_interval_s=0)
        assert list(bar) == [0, 1, 2] and bar.n == 3 and bar.total == 3
        bar.close()
        last = out.getvalue().splitlines()[-1]
        assert last.startswith("local: 100%|") and "3/3" in last and f"pid={os.getpid()}" not in last
    finally:
        tqdm_ray._manager = None


def test_format_without_a_total() -> None:
    assert tqdm_ray.format_bar(_state(total=None, x=7, desc=""), 2.0) == "7it [2.0s, 3.50it/s]"
    assert tqdm_ray.format_bar(_state(x=2), 0.1).endswith("2/4 [0.1s, ?it/s]")
