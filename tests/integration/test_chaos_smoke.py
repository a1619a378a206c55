"""Short chaos runs: faults during a known-answer workload lose and corrupt nothing.

- single node: GCS and worker SIGKILLs (20 s);
- three nodes: worker and GCS SIGKILLs, node SIGKILLs (a replacement node takes the slot) and
  SIGSTOP pauses of a raylet, the GCS or a worker (45 s of workload, about 60-75 s of wall time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from chaos.faults import plan_schedule

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 4
DURATION = 20
MEAN_INTERVAL = 3

#: The multi-node scenario (python -m chaos.runner --nodes 3 --duration 45 ...). 45 s of workload
#: rather than 60 keeps the whole run (start, drain, checks, shutdown) under ~90 s on a loaded 2-core
#: machine; the mean interval of 4 s still fires every kind at least twice.
MULTI_FAULTS = "worker,node,gcs,pause"
MULTI_ARGS = ["--nodes", "3", "--duration", "45", "--faults", MULTI_FAULTS, "--seed", "1", "--mean-interval", "4",
              "--item-timeout", "20", "--settle-timeout", "10"]


def _run(tmp_path: Any, args: list[str], timeout_s: float) -> tuple[dict[str, Any], str, float]:
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "chaos.runner", *args, "--json", str(out)]
    start = time.monotonic()
    # A subprocess keeps this test's process free of the run's cluster; on timeout SIGTERM lets the
    # runner shut its cluster down (its finally) before we give up on it.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        text, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            text, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            text, _ = proc.communicate()
        raise AssertionError(f"the chaos runner did not finish within {timeout_s} s:\n{text}") from None
    assert out.exists(), text
    report = json.loads(out.read_text())
    assert report["passed"] == (proc.returncode == 0), text
    return report, text, time.monotonic() - start


def test_schedule_is_seeded_and_covers_both_kinds() -> None:
    a = plan_schedule(SEED, ["gcs", "worker"], MEAN_INTERVAL, 2.0, DURATION - 5.0)
    assert a == plan_schedule(SEED, ["gcs", "worker"], MEAN_INTERVAL, 2.0, DURATION - 5.0)
    assert {p.kind for p in a} == {"gcs", "worker"}
    assert all(2.0 <= p.t <= DURATION - 5.0 for p in a)


def test_chaos_smoke_gcs_and_worker_kills_lose_nothing(tmp_path: Any) -> None:
    report, text, _ = _run(tmp_path, ["--seed", str(SEED), "--duration", str(DURATION), "--faults", "gcs,worker",
                                      "--mean-interval", str(MEAN_INTERVAL)], 90)
    assert report["lost"] == 0, text
    assert report["wrong"] == 0, text
    assert report["hung"] == 0, text
    assert report["submitted"] > 100, text
    assert report["faults_fired"]["gcs"] >= 1, text
    assert report["faults_fired"]["worker"] >= 1, text
    assert report["fault_errors"] == 0, text
    assert report["unexpected_deaths"] == [], text
    assert all(report["invariants"].values()), text
    assert report["passed"], text


#: What node deaths may still cause under CI load (chaos/README.md, "The CI scenario"): results
#: that arrive later than the item timeout, when the death is declared late (a GCS killed or paused
#: next to the node kill restarts the death clock) and replacement workers start slowly on a loaded
#: machine. Only that is tolerated (as an xfail), and only with its signature: items attributed to
#: node faults that timed out. A result lost with an error (bugs F, N: NodeDiedError "no retries
#: left", ObjectLostError "no node ... keeps the lineage") or wrong fails the test. Unloaded runs of
#: this scenario (seeds 1-3) pass outright.
SLOW_RECOVERY = "recovery slower than the item timeout under load (chaos/README.md, The CI scenario)"


@pytest.mark.timeout(200)
def test_chaos_multinode_worker_node_gcs_pause(tmp_path: Any) -> None:
    report, text, wall = _run(tmp_path, MULTI_ARGS, 170)
    for kind in MULTI_FAULTS.split(","):
        assert report["faults_fired"][kind] >= 1, text
    assert report["submitted"] > 300, text
    assert report["fault_errors"] == 0, text
    assert not report.get("runner_error"), text
    assert report["wrong"] == 0 and report["wrong_items"] == [], text
    assert report["unexpected_deaths"] == [], text
    assert report["false_node_deaths"] == [], text
    inv = report["invariants"]
    for name in ("no_leftover_processes", "no_leftover_shm", "raylet_invariants_clean", "capacity_restored"):
        assert inv[name], f"{name}\n{text}"
    by = report["by_fault_kind"]
    # Worker kills, GCS kills and pauses shorter than the death timeout must lose nothing at all.
    for kind in ("worker", "gcs", "pause", "none"):
        assert by[kind]["results_lost"] == 0 and by[kind]["hung"] == 0, f"{kind}\n{text}"
    if not report["passed"]:
        missing = set((report.get("resources") or {}).get("missing") or {})
        assert missing <= {"chaos_node"}, text  # only placement-group bundles (bug D) may stay reserved
        failed = [i for i in report["lost_items"] if not str(i.get("error") or "").startswith("timeout:")]
        assert failed == [], f"results lost with an error, not just late:\n{text}"
        pytest.xfail(f"node deaths: {by['node']['hung']} results later than the item timeout, resources "
                     f"missing {sorted(missing)}: {SLOW_RECOVERY} (wall {wall:.0f} s)")
    assert report["passed"], text
