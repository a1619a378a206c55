"""Shared fixtures: an isolated temp dir per test session, real local clusters, and a leak check."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

# Every cluster a test starts lives under this directory, removed at the end of the session.
_TMP = tempfile.mkdtemp(prefix="rayredis-tests-")
os.environ["RAYREDIS_TEMP_DIR"] = _TMP
os.environ.pop("RAYREDIS_ADDRESS", None)
os.environ.pop("RAY_ADDRESS", None)


def _our_processes() -> set[tuple[int, str]]:
    """Live processes of clusters started by this test session (never other sessions' clusters)."""
    out = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if _TMP in cmd:  # every process a test cluster starts names its session dir under _TMP
            out.add((int(pid), cmd))
    return out


def _our_shm() -> set[str]:
    """Shared-memory segments of this test session's clusters (tagged by their session dirs)."""
    from rayredis._private import session

    try:
        sessions = glob.glob(os.path.join(_TMP, "**", "session_*"), recursive=True)
        tags = tuple(session.session_shm_tag(n) for n in sessions)
        return {n for n in os.listdir("/dev/shm") if tags and n.startswith(tags)}
    except OSError:
        return set()


def _raylet_violations() -> list[str]:
    """Invariant violations reported by the raylets of the cluster this process is connected to."""
    from rayredis._private import debug, worker_context

    cw = worker_context.global_worker
    if cw is None:
        return []
    return [f"node {node[:8]}: {v}" for node, vs in debug.validate_cluster(cw.store).items() for v in vs]


def _shutdown_checked() -> None:
    """Check the raylets' invariants while the cluster is still up, then shut it down."""
    import rayredis

    try:
        violations = _raylet_violations()
    finally:
        rayredis.shutdown()
    if violations:
        pytest.fail("raylet invariants violated:\n" + "\n".join(violations))


def pytest_configure(config: pytest.Config) -> None:
    """Put pytest's ``tmp_path`` directories under the session's temp dir too, so the leak check
    also sees clusters that tests start with their own ``RAYREDIS_TEMP_DIR`` (the CLI tests)."""
    if config.option.basetemp is None:
        config.option.basetemp = os.path.join(_TMP, "pytest")


_BEFORE_PROCS = {p for p, _ in _our_processes()}
_BEFORE_SHM = _our_shm()


@pytest.fixture
def ray_start_regular() -> Iterator[object]:
    """A fresh local cluster (2 CPUs) for one test, shut down afterwards."""
    import rayredis

    ctx = rayredis.init(num_cpus=2)
    try:
        yield ctx
    finally:
        _shutdown_checked()


@pytest.fixture(scope="module")
def ray_shared() -> Iterator[object]:
    """One local cluster shared by a module's tests (cheaper; tests must not break it)."""
    import rayredis

    ctx = rayredis.init(num_cpus=2, object_store_memory=512 * 1024 * 1024)
    try:
        yield ctx
    finally:
        _shutdown_checked()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any test left a process, a shared-memory segment or a temp file behind."""
    import time

    deadline = time.monotonic() + 10
    leaked = {(p, c) for p, c in _our_processes() if p not in _BEFORE_PROCS}
    shm = _our_shm() - _BEFORE_SHM
    while (leaked or shm) and time.monotonic() < deadline:
        time.sleep(0.2)
        leaked = {(p, c) for p, c in _our_processes() if p not in _BEFORE_PROCS}
        shm = _our_shm() - _BEFORE_SHM
    problems = []
    if leaked:
        problems.append("processes: " + "; ".join(f"{p}: {c[:120]}" for p, c in sorted(leaked)))
        for p, _ in leaked:
            try:
                os.kill(p, 9)
            except OSError:
                pass
    if shm:
        problems.append("shared memory: " + ", ".join(sorted(shm)))
        for n in shm:
            try:
                os.unlink(os.path.join("/dev/shm", n))
            except OSError:
                pass
    if os.environ.get("RAYREDIS_TEST_KEEP_TMP"):
        print(f"\nkept test temp dir {_TMP}")
    else:
        shutil.rmtree(_TMP, ignore_errors=True)
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = "LEAK CHECK FAILED: tests left behind " + " | ".join(problems)
        if reporter is not None:
            reporter.write_line(msg, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
