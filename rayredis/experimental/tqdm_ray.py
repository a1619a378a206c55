"""Ray's ``ray.experimental.tqdm_ray``: progress bars in tasks and actors, drawn at the driver.

A bar in a worker prints its state as one JSON line tagged with :data:`RAY_TQDM_MAGIC` (at most
every ``flush_interval_s``, and on ``close``); the line travels with the task's other output to the
drivers of its job (``worker/log_forward.py``), which hand it to this module's bar manager instead
of printing it. At the driver, bars are drawn with ``tqdm`` when it is installed (as Ray does);
without it, each bar is redrawn in place on a terminal, or printed as a line at most every
``PLAIN_INTERVAL_S`` (and when it closes) otherwise, so logs show progress too.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, TextIO, TypeVar

from rayredis._private import worker_context

try:
    import tqdm.auto as real_tqdm  # type: ignore[import-untyped]
except ImportError:  # optional, as in Ray: the plain renderer draws the bars
    real_tqdm = None

__all__ = ["RAY_TQDM_MAGIC", "safe_print", "tqdm"]

#: The tag of a bar's state line (Ray's token, so tools that know Ray's lines know these).
RAY_TQDM_MAGIC = "__ray_tqdm_magic_token__"
#: How often the plain renderer prints a bar that is not on a terminal.
PLAIN_INTERVAL_S = 5.0

T = TypeVar("T")
State = dict[str, Any]
_print = builtins.print


def _in_worker() -> bool:
    cw = worker_context.global_worker
    return cw is not None and not cw.is_driver


def _node_ip() -> str:
    cw = worker_context.global_worker
    return getattr(cw, "node_ip", "") or "127.0.0.1"


class tqdm:  # noqa: N801 - Ray's (and tqdm's) name
    """A progress bar usable in a task, an actor or the driver (Ray's subset of tqdm's arguments)."""

    DEFAULT_FLUSH_INTERVAL_SECONDS = 1.0

    def __init__(self, iterable: Iterable[Any] | None = None, desc: str | None = None, total: int | None = None,
                 unit: str | None = None, position: int | None = None, flush_interval_s: float | None = None):
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self._iterable = iterable
        self._desc = desc or ""
        self._total = total
        self._unit = unit or "it"
        self._ip = _node_ip()
        self._pid = os.getpid()
        self._pos = position or 0
        self._uuid = uuid.uuid4().hex
        self._x = 0
        self._closed = False
        self._flush_interval_s = self.DEFAULT_FLUSH_INTERVAL_SECONDS if flush_interval_s is None else flush_interval_s
        self._last_flush_time = 0.0

    def set_description(self, desc: str) -> None:
        self._desc = desc
        self._dump_state()

    def update(self, n: int = 1) -> None:
        self._x += n
        self._dump_state()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._dump_state(force_flush=True)

    def refresh(self) -> None:
        self._dump_state()

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, total: int) -> None:
        self._total = total

    @property
    def n(self) -> int:
        return self._x

    @n.setter
    def n(self, n: int) -> None:
        self._x = n

    def __iter__(self) -> Iterator[Any]:
        if self._iterable is None:
            raise ValueError("No iterable provided: pass one, as tqdm(range(10)), or call update().")
        for x in self._iterable:
            self.update(1)
            yield x
        self.close()  # (as tqdm does at the end of its iterable; Ray's leaves the bar open)

    def _dump_state(self, force_flush: bool = False) -> None:
        now = time.time()
        if not force_flush and now - self._last_flush_time < self._flush_interval_s:
            return
        self._last_flush_time = now
        if _in_worker():
            # One write with its newline, so the line is forwarded whole.
            sys.stdout.write(json.dumps(self._get_state()) + "\n")
            sys.stdout.flush()
        else:
            instance().process_state_update(self._get_state())

    def _get_state(self) -> State:
        return {"__magic_token__": RAY_TQDM_MAGIC, "x": self._x, "pos": self._pos, "desc": self._desc,
                "total": self._total, "unit": self._unit, "ip": self._ip, "pid": self._pid, "uuid": self._uuid,
                "closed": self._closed}


def format_bar(state: State, elapsed_s: float, width: int = 20) -> str:
    """One line for a bar's state: ``desc: 40%|████      | 4/10 [3.2s, 1.25it/s]``."""
    x, total, unit = state["x"], state["total"], state["unit"]
    rate = f"{x / elapsed_s:.2f}{unit}/s" if elapsed_s >= 0.5 else f"?{unit}/s"  # (no rate from an instant)
    desc = f"{state['desc']}: " if state["desc"] else ""
    if total:
        frac = min(max(x / total, 0.0), 1.0)
        filled = int(frac * width)
        bar = "█" * filled + " " * (width - filled)
        return f"{desc}{frac * 100:3.0f}%|{bar}| {x}/{total} [{elapsed_s:.1f}s, {rate}]"
    return f"{desc}{x}{unit} [{elapsed_s:.1f}s, {rate}]"


class _PlainBar:
    """A bar drawn without tqdm: in place on a terminal, else a line now and then."""

    def __init__(self, state: State, out: TextIO, clock: Any = time.monotonic):
        self.state = state
        self.out = out
        self.clock = clock
        self.started = clock()
        self.last_print = -PLAIN_INTERVAL_S
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.draw()

    def update(self, state: State) -> None:
        self.state = state
        self.draw()

    def draw(self, final: bool = False) -> None:
        now = self.clock()
        line = format_bar(self.state, now - self.started)
        if self.tty:
            self.out.write("\r\x1b[2K" + line + ("\n" if final else ""))
        elif final or now - self.last_print >= PLAIN_INTERVAL_S:
            self.out.write(line + "\n")
        else:
            return
        self.last_print = now
        self.out.flush()

    def close(self) -> None:
        self.draw(final=True)

    def hide(self) -> None:
        if self.tty:
            self.out.write("\r\x1b[2K")

    def unhide(self) -> None:
        if self.tty:
            self.draw()


class _TqdmBar:
    """A bar drawn by tqdm (Ray's rendering), at ``position``."""

    def __init__(self, state: State, position: int):
        assert real_tqdm is not None
        self.state = state
        self.bar = real_tqdm.tqdm(desc=state["desc"], total=state["total"], unit=state["unit"], position=position,
                                  dynamic_ncols=True, unit_scale=True)
        if state["x"]:
            self.bar.update(state["x"])

    def update(self, state: State) -> None:
        if state["desc"] != self.state["desc"]:
            self.bar.set_description(state["desc"])
        if state["total"] != self.state["total"]:
            self.bar.total = state["total"]
        delta = state["x"] - self.state["x"]
        if delta:
            self.bar.update(delta)
        self.bar.refresh()
        self.state = state

    def close(self) -> None:
        self.bar.close()

    def hide(self) -> None:
        self.bar.clear()

    def unhide(self) -> None:
        self.bar.refresh()


class _BarManager:
    """The driver's bars, by uuid: created at a bar's first state, closed at its last."""

    def __init__(self, out: TextIO | None = None):
        self.out = out
        self.ip = _node_ip()
        self.pid = os.getpid()
        self.bars: dict[str, _PlainBar | _TqdmBar] = {}
        self.lock = threading.RLock()

    def process_state_update(self, state: State) -> None:
        with self.lock:
            state = dict(state)
            if state["pid"] != self.pid or state["ip"] != self.ip:
                where = f"pid={state['pid']}" + (f", ip={state['ip']}" if state["ip"] != self.ip else "")
                state["desc"] = f"({where}) {state['desc']}"
            bar = self.bars.get(state["uuid"])
            if bar is None:
                if state["closed"] and state["x"] == 0:
                    return
                out = self.out or sys.stderr
                bar = _TqdmBar(state, len(self.bars)) if real_tqdm is not None and self.out is None \
                    else _PlainBar(state, out)
                self.bars[state["uuid"]] = bar
            else:
                bar.update(state)
            if state["closed"]:
                bar.update(state)
                bar.close()
                del self.bars[state["uuid"]]

    def hide_bars(self) -> None:
        with self.lock:
            for bar in self.bars.values():
                bar.hide()

    def unhide_bars(self) -> None:
        with self.lock:
            for bar in self.bars.values():
                bar.unhide()


_manager: _BarManager | None = None
_mgr_lock = threading.Lock()


def instance() -> _BarManager:
    """This process's bar manager (created on first use)."""
    global _manager
    with _mgr_lock:
        if _manager is None:
            _manager = _BarManager()
        return _manager


def handle_line(line: str) -> bool:
    """Driver side: if ``line`` is a bar's state line, apply it and return True (not to be printed)."""
    if RAY_TQDM_MAGIC not in line:
        return False
    try:
        state = json.loads(line)
    except ValueError:
        return False
    if not isinstance(state, dict) or state.get("__magic_token__") != RAY_TQDM_MAGIC:
        return False
    instance().process_state_update(state)
    return True


def safe_print(*args: Any, **kwargs: Any) -> None:
    """``print`` that keeps the driver's bars intact (hides them, prints, redraws them)."""
    if kwargs.get("file") not in (sys.stdout, sys.stderr, None):
        _print(*args, **kwargs)
        return
    try:
        instance().hide_bars()
        _print(*args, **kwargs)
    finally:
        instance().unhide_bars()
