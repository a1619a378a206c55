"""A short chaos run: GCS and worker SIGKILLs during a known-answer workload lose and corrupt nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from chaos.faults import plan_schedule

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = 4
DURATION = 20
MEAN_INTERVAL = 3


def test_schedule_is_seeded_and_covers_both_kinds():
    a = plan_schedule(SEED, ["gcs", "worker"], MEAN_INTERVAL, 2.0, DURATION - 5.0)
    assert a == plan_schedule(SEED, ["gcs", "worker"], MEAN_INTERVAL, 2.0, DURATION - 5.0)
    assert {p.kind for p in a} == {"gcs", "worker"}
    assert all(2.0 <= p.t <= DURATION - 5.0 for p in a)


def test_chaos_smoke_gcs_and_worker_kills_lose_nothing(tmp_path):
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "chaos.runner", "--seed", str(SEED), "--duration", str(DURATION),
           "--faults", "gcs,worker", "--mean-interval", str(MEAN_INTERVAL), "--json", str(out)]
    # A subprocess keeps this test's process free of the run's cluster; on timeout SIGTERM lets the
    # runner shut its cluster down (its finally) before we give up on it.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        text, _ = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            text, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            text, _ = proc.communicate()
        raise AssertionError(f"the chaos runner did not finish within 90 s:\n{text}") from None
    assert out.exists(), text
    report = json.loads(out.read_text())
    assert report["lost"] == 0, text
    assert report["wrong"] == 0, text
    assert report["submitted"] > 100, text
    assert report["faults_fired"]["gcs"] >= 1, text
    assert report["faults_fired"]["worker"] >= 1, text
    assert report["fault_errors"] == 0, text
    assert report["unexpected_deaths"] == [], text
    assert report["passed"] and proc.returncode == 0, text
