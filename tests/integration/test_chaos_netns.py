"""The chaos runner's ``--netns`` mode: every node on a host of its own, partitions and node kills.

A three-node run (35 s of workload, seed 4) with ``partition,node`` faults, partitions held 1-1.5 s
(shorter than the death timeout: nothing dies): every result must be correct and none lost, no
actor instance may run next to its replacement (the counters' call sequences), and every invariant
must hold; afterwards no namespace of the run may be left. Long partitions (declared dead, fenced on
the heal) still lose results through bug L (chaos/README.md); fencing itself is tested by
test_fencing.py.
Placement-group items are off (``--pg-interval 0``): what node deaths do to them is bugs D, E and G
(chaos/README.md), which
test_chaos_smoke.py covers. Also: a SIGTERMed run and a SIGKILLed owner leak no namespace.

Needs root, ``ip netns`` and ``ebtables``: skipped with the reason otherwise, except on CI, where it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from chaos import netns
from chaos.runner import parse_args

pytestmark = [pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = ["--nodes", "3", "--netns", "--duration", "35", "--faults", "partition,node", "--seed", "4",
        "--partition-min", "1", "--partition-max", "1.5", "--mean-interval", "4",
        "--item-timeout", "40", "--settle-timeout", "10", "--pg-interval", "0"]


def _require_netns() -> None:
    reason = netns.unavailable_reason(partitions=True)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the netns chaos test must run on CI, but network namespaces are unusable: {reason}")
    pytest.skip(f"netns chaos test skipped: {reason}")


def _namespaces() -> set[str]:
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return {line.split(" ", 1)[0] for line in res.stdout.splitlines() if line.strip()}


def _run_names(report: dict[str, Any]) -> set[str]:
    info = report.get("netns_hosts") or {}
    return {info.get("switch", ""), *(h[0] for h in (info.get("hosts") or {}).values())} - {""}


def test_partition_needs_netns_and_says_so() -> None:
    with pytest.raises(ValueError, match="partition fault needs --netns"):
        parse_args(["--nodes", "3", "--faults", "partition"])
    res = subprocess.run([sys.executable, "-m", "chaos.runner", "--faults", "partition"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "needs --netns" in res.stderr, res.stderr


def test_netns_refused_with_the_reason_when_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "unavailable_reason", lambda partitions=False: "needs root (test)")
    with pytest.raises(ValueError, match=r"--netns cannot run here: needs root \(test\)"):
        parse_args(["--nodes", "3", "--netns"])


@pytest.mark.timeout(200)
def test_chaos_netns_partitions_and_node_kills_lose_nothing(tmp_path: Any) -> None:
    _require_netns()
    out = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, "-m", "chaos.runner", *ARGS, "--json", str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        text, _ = proc.communicate(timeout=170)
    except subprocess.TimeoutExpired:
        proc.terminate()  # the runner's finally shuts the cluster down and removes the hosts
        text, _ = proc.communicate(timeout=60)
        raise AssertionError(f"the chaos runner did not finish within 170 s:\n{text}") from None
    assert out.exists(), text
    report = json.loads(out.read_text())
    assert report["passed"] == (proc.returncode == 0), text
    assert _run_names(report) and not (_run_names(report) & _namespaces()), f"namespaces left behind\n{text}"
    parts = [f for f in report["faults"] if f["kind"] == "partition" and not f.get("skipped")]
    assert parts and all(f["regime"] == "short" and not f.get("declared_dead") for f in parts), text
    for f in parts:
        assert f.get("answers_s") is not None, text
    assert report["faults_fired"]["node"] >= 1, text
    assert report["fault_errors"] == 0 and not report.get("runner_error"), text
    assert report["lost"] == 0 and report["hung"] == 0 and report["wrong"] == 0, text
    assert not report["counter_violations"], text
    assert report["unexpected_deaths"] == [] and report["false_node_deaths"] == [], text
    assert all(report["invariants"].values()), text
    assert report["passed"], text


@pytest.mark.timeout(150)
def test_sigterm_mid_run_leaves_no_namespace_or_process() -> None:
    _require_netns()
    proc = subprocess.Popen([sys.executable, "-m", "chaos.runner", "--nodes", "2", "--netns", "--duration", "60",
                             "--faults", "partition", "--mean-interval", "2"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    names: set[str] = set()
    session = ""
    for line in proc.stdout:
        lines.append(line)
        if "[chaos] hosts: " in line:
            names = set(line.split("hosts: ", 1)[1].split())
        if "head session " in line:
            session = line.rsplit("head session ", 1)[1].strip()
        if "fault #0 partition" in line:
            break  # the first partition is over: the second may be cutting a host off right now
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    text = "".join(lines) + rest
    assert proc.returncode != 0 and names and session, text
    assert not (names & _namespaces()), f"namespaces left behind after SIGTERM\n{text}"
    left = [p for p in os.listdir("/proc") if p.isdigit() and session in _cmdline(int(p))]
    assert not left, f"processes of the run left after SIGTERM: {left}\n{text}"


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_sweep_removes_the_namespaces_of_a_killed_owner() -> None:
    _require_netns()
    script = ("import time\nfrom chaos import netns\nwith netns.hosts(['a', 'b']) as n:\n"
              "    print(n.switch, *(h.netns for h in n.hosts.values()), flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    names = set(proc.stdout.readline().split())
    assert len(names) == 3 and names <= _namespaces()
    proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()
    assert names <= _namespaces()  # SIGKILL: nothing ran its teardown
    assert names <= set(netns.sweep_stale())
    assert not (names & _namespaces())
