"""A three-host cluster in network namespaces: a head, a worker node and a remote driver.

Each host is a network namespace with its own address on a private bridge and its own /dev/shm
(see :mod:`tests.integration.netns`), so nothing crosses between hosts except over the network:

* head (``.1``): ``rayredis start --head`` (Redis shards, GCS, raylet; 1 CPU, resource ``head``);
* worker (``.2``): ``rayredis start --address <head>`` (a raylet; 2 CPUs, resource ``worker``);
* driver (``.3``): no rayredis process but the driver script, which connects with
  ``init(address=<head>)`` and checks, through Ray's public API, that the two nodes act as one
  cluster: tasks and an actor placed by custom resources, a STRICT_SPREAD placement group, and
  100 MB objects moving worker -> head, worker -> driver and driver -> worker (and, to tell a
  remote driver's own object I/O apart from transfers between raylets, head -> driver and
  driver -> head).

The driver runs every check once (module fixture) and prints one JSON result per check, so each
test below asserts one of them and a failing check does not hide the others. Every wait has a
timeout; a failure message carries the check's error and the tail of the nodes' logs.

Needs root and ``ip netns``: skipped with the reason otherwise, except on CI, where it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rayredis._private import process
from tests.integration import netns

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CLI = [sys.executable, "-m", "rayredis.cli.main"]
#: The primary Redis shard's port: Ray's default, free in a namespace of our own.
PORT = 6379
#: Object store per node: room for a few 100 MB objects and their copies.
STORE_BYTES = 768 * 1024**2
#: Seconds for one ``rayredis start`` / ``rayredis stop`` command.
CLI_TIMEOUT_S = 90.0
#: Seconds the driver gives each ``ray.get`` (a check that should take a second or two).
GET_TIMEOUT_S = 30.0
#: Seconds for the whole remote-driver script (10 checks, each bounded by GET_TIMEOUT_S waits).
DRIVER_TIMEOUT_S = 600.0
RESULT_MARK = "NETNS-RESULT "


@dataclass
class NetnsCluster:
    """The running cluster: hosts, address, password and what the CLI recorded per node."""

    net: netns.Network
    root: Path  # per-host temp dirs (RAYREDIS_TEMP_DIR) live under it
    password: str
    address: str = ""
    node_ids: dict[str, str] = field(default_factory=dict)  # host name -> node ID (hex)
    session_dirs: dict[str, str] = field(default_factory=dict)  # host name -> session dir

    def ip(self, host: str) -> str:
        return self.net[host].ip

    def env(self, host: str, **extra: str) -> dict[str, str]:
        """A command's environment on ``host``: its own temp dir, the password, no inherited cluster."""
        e = dict(os.environ, RAYREDIS_TEMP_DIR=str(self.root / host), RAYREDIS_REDIS_PASSWORD=self.password,
                 PYTHONUNBUFFERED="1", **extra)
        for name in ("RAYREDIS_ADDRESS", "RAY_ADDRESS"):
            e.pop(name, None)
        return e

    def run(self, host: str, args: list[str], timeout: float, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run ``args`` on ``host``; a timeout becomes a failure that shows the logs."""
        try:
            return subprocess.run(self.net[host].cmd(*args), env=self.env(host, **extra_env), capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            pytest.fail(f"`{' '.join(args[:6])} ...` on {host} did not finish within {timeout} s.\n"
                        f"stdout:\n{tail(out)}\nstderr:\n{tail(err)}\n{self.logs()}")

    def cli(self, host: str, *args: str) -> subprocess.CompletedProcess[str]:
        res = self.run(host, [*CLI, *args], CLI_TIMEOUT_S)
        assert res.returncode == 0, (f"`rayredis {' '.join(args)}` on {host} failed (exit {res.returncode}):\n"
                                     f"stdout:\n{tail(res.stdout)}\nstderr:\n{tail(res.stderr)}\n{self.logs()}")
        return res

    def read_registry(self, host: str) -> None:
        """Record the node ID and session dir that ``rayredis start`` on ``host`` registered."""
        for entry in sorted((self.root / host / "cli_sessions").glob("*.json")):
            data = json.loads(entry.read_text())
            self.session_dirs[host] = data["session_dir"]
            self.node_ids[host] = data["node_id"]

    def logs(self, lines: int = 25) -> str:
        """The tail of each node's raylet and GCS logs and of every non-empty .err file."""
        parts = []
        for host, session in sorted(self.session_dirs.items()):
            logs = Path(session) / "logs"
            names = ["raylet.log", "gcs_server.log"]
            names += sorted(p.name for p in logs.glob("*.err") if p.stat().st_size > 0)
            for name in names:
                path = logs / name
                if path.exists():
                    text = tail(path.read_text(errors="replace"), lines)
                    parts.append(f"--- {host}: {path} (last {lines} lines)\n{text}")
        return "\n".join(parts) if parts else "(no session logs yet)"


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _require_netns() -> None:
    reason = netns.unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the multi-host test must run on CI, but network namespaces are unusable: {reason}")
    pytest.skip(f"multi-host test skipped: {reason}")


_ECHO_SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.create_server((sys.argv[1], 7000))
    print("listening", flush=True)
    c, peer = s.accept()
    c.sendall(peer[0].encode())
""")


def test_hosts_reach_each_other_only_and_are_removed_on_failure() -> None:
    """The harness itself: hosts talk over the bridge and have no route elsewhere, /dev/shm is per
    host, and a failing body still leaves no namespace and no process behind."""
    _require_netns()
    built: list[netns.Network] = []
    started: list[subprocess.Popen[str]] = []
    probe = "import socket, sys; print(socket.create_connection((sys.argv[1], 7000), timeout=5).recv(64).decode())"
    with pytest.raises(RuntimeError, match="body failed"), netns.hosts(["a", "b"]) as net:
        built.append(net)
        a, b = net["a"], net["b"]
        server = subprocess.Popen(a.cmd(sys.executable, "-c", _ECHO_SERVER, a.ip), stdout=subprocess.PIPE,
                                  text=True)
        started.append(server)
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        # (Not probed from the machine itself: it has no route to the hosts, so a connection attempt
        # would leave through its default route towards a private address that is not ours.)
        routes = subprocess.run(a.cmd("ip", "-4", "route"), capture_output=True, text=True, timeout=30).stdout
        assert "default" not in routes, f"host a has a default route: {routes}"
        got = subprocess.run(b.cmd(sys.executable, "-c", probe, a.ip), capture_output=True, text=True, timeout=30)
        assert got.returncode == 0 and got.stdout.strip() == b.ip, got.stderr
        marker = f"rayredis_netns_probe_{secrets.token_hex(4)}"
        subprocess.run(a.cmd("touch", f"/dev/shm/{marker}"), check=True, timeout=30)
        assert not os.path.exists(f"/dev/shm/{marker}"), "host a wrote into the machine's /dev/shm"
        in_b = subprocess.run(b.cmd("ls", "/dev/shm"), capture_output=True, text=True, timeout=30).stdout
        assert marker not in in_b.split(), "host b sees host a's /dev/shm"
        started.append(subprocess.Popen(b.cmd("sleep", "600"), text=True))  # left running for the teardown
        raise RuntimeError("body failed")
    assert netns.remaining(built[0]) == [], "namespaces left after a failing body"
    for proc in started:
        assert proc.wait(timeout=10) is not None  # the teardown killed what was still running
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetnsCluster]:
    """Head and worker node started with the CLI on their own hosts; stopped with it afterwards.

    Teardown checks that ``rayredis stop`` left no recorded process alive, no object segment in
    any host's /dev/shm and nothing for the namespace teardown to kill.
    """
    _require_netns()
    root = tmp_path_factory.mktemp("netns")  # under the test session's temp dir: the leak check sees it
    with netns.hosts(["head", "worker", "driver"]) as net:
        c = NetnsCluster(net, root, password=secrets.token_hex(16))
        problems: list[str] = []
        try:
            head_ip, worker_ip = c.ip("head"), c.ip("worker")
            out = c.cli("head", "start", "--head", "--port", str(PORT), "--node-ip-address", head_ip,
                        "--bind-host", head_ip, "--num-cpus", "1", "--resources", '{"head": 1}',
                        "--object-store-memory", str(STORE_BYTES)).stdout
            c.read_registry("head")
            c.address = f"{head_ip}:{PORT}"
            assert f"Local node IP: {head_ip}" in out, out
            assert f"rayredis.init(address='{c.address}'" in out, out
            out = c.cli("worker", "start", "--address", c.address, "--node-ip-address", worker_ip,
                        "--bind-host", worker_ip, "--num-cpus", "2", "--resources", '{"worker": 1}',
                        "--object-store-memory", str(STORE_BYTES)).stdout
            c.read_registry("worker")
            assert f"Joined the rayredis cluster at {c.address} as node {c.node_ids['worker']}" in out, out
            yield c
        finally:
            for host in ("worker", "head"):
                try:
                    res = c.run(host, [*CLI, "stop"], CLI_TIMEOUT_S)
                    if res.returncode != 0:
                        problems.append(f"`rayredis stop` on {host} exited {res.returncode}: {res.stderr}")
                except BaseException as e:  # noqa: BLE001 - stop the other host too, then report
                    problems.append(f"`rayredis stop` on {host}: {e}")
            for host, session in c.session_dirs.items():
                alive = [f"{r.role} {r.pid}" for r in process.recorded(session) if process.is_alive(r)]
                if alive:
                    problems.append(f"still running on {host} after `rayredis stop`: {', '.join(alive)}")
            for h in net.hosts.values():
                shm = subprocess.run(h.cmd("ls", "/dev/shm"), capture_output=True, text=True, timeout=30)
                left = [n for n in shm.stdout.split() if n.startswith("rayredis_")]
                if left:
                    problems.append(f"object segments left in {h.name}'s /dev/shm: {', '.join(left)}")
            killed = netns.teardown(net)
            if killed:
                problems.append("processes the namespace teardown had to kill: " + "; ".join(killed))
            if netns.remaining(net):
                problems.append(f"namespaces left behind: {netns.remaining(net)}")
        if problems:
            pytest.fail("multi-host teardown: " + " | ".join(problems) + "\n" + c.logs())


# The driver script: runs on the driver host, connects to the head, runs each check once and
# prints one ``NETNS-RESULT {"name": {...}}`` line per check, as soon as the check is done.
DRIVER = textwrap.dedent('''
    import hashlib, json, os, socket, sys, time, traceback

    import numpy as np

    import rayredis as ray
    from rayredis.util.placement_group import placement_group, placement_group_table, remove_placement_group
    from rayredis.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    ADDRESS, HEAD_IP, TIMEOUT = sys.argv[1], sys.argv[2], float(sys.argv[3])
    SIZE = 100 * 1024 * 1024
    MARK = "NETNS-RESULT "

    def report(name, fn, cleanup=None):
        start = time.monotonic()
        try:
            result = {"ok": True, "value": fn()}
        except BaseException as e:
            result = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000],
                      "traceback": traceback.format_exc()[-3000:]}
        finally:
            if cleanup is not None:
                try:
                    cleanup()
                except BaseException as e:
                    print(f"cleanup of {name} failed: {e!r}", file=sys.stderr)
        result["seconds"] = round(time.monotonic() - start, 2)
        print(MARK + json.dumps({name: result}), flush=True)

    def here():
        """(node ID the runtime reports, IP this process actually has on the test network)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((HEAD_IP, 9))  # UDP connect sends nothing; it only picks the source address
            ip = s.getsockname()[0]
        return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ip}

    def make_array(seed):
        return np.random.default_rng(seed).integers(0, 256, size=SIZE, dtype=np.uint8)

    def digest(arr):
        return hashlib.sha256(memoryview(np.ascontiguousarray(arr))).hexdigest()

    @ray.remote
    def where():
        return here()

    @ray.remote(num_returns=2)
    def produce(seed):
        arr = make_array(seed)
        return arr, {**here(), "sha256": digest(arr)}

    @ray.remote
    def consume(arr):
        return {**here(), "sha256": digest(arr), "nbytes": int(arr.nbytes)}

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

        def where(self):
            return here()

    pending = []  # refs of a failed check, cancelled so they do not hold resources for later checks

    def cancel_pending():
        for ref in pending:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        pending.clear()

    def submit(ref):
        pending.append(ref)
        return ref

    def get(refs):
        value = ray.get(refs, timeout=TIMEOUT)
        done = refs if isinstance(refs, list) else [refs]
        pending[:] = [p for p in pending if all(p is not d for d in done)]
        return value

    ray.init(address=ADDRESS, _redis_password=os.environ["NETNS_TEST_REDIS_PASSWORD"])
    report("driver", lambda: {"node_id": ray.get_runtime_context().get_node_id()})
    report("nodes", lambda: [{"node_id": n["NodeID"], "ip": n["NodeManagerAddress"],
                              "resources": n["Resources"]} for n in ray.nodes() if n["Alive"]])

    def attempt(ref):
        """get(ref), or {"error": ...} with the task cancelled: one failure does not hide the rest."""
        try:
            return ray.get(ref, timeout=TIMEOUT)
        except Exception as e:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
            return {"error": f"{type(e).__name__}: {e}"[:1000]}

    def tasks():
        head = where.options(resources={"head": 0.01}).remote()
        worker = where.options(resources={"worker": 0.01}).remote()
        return {"head": attempt(head), "worker": attempt(worker)}
    report("tasks", tasks)

    actor = []
    def actor_calls():
        actor.append(Counter.options(resources={"worker": 0.01}).remote())
        calls = [actor[0].incr.remote() for _ in range(20)]
        return {"where": get(submit(actor[0].where.remote())), "counts": get(calls)}
    report("actor", actor_calls, lambda: [ray.kill(a) for a in actor])

    pgs = []
    def strict_spread():
        pgs.append(placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD"))
        get(submit(pgs[0].ready()))
        refs = [where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
            pgs[0], placement_group_bundle_index=i)).remote() for i in range(2)]
        return {"bundles": [attempt(r) for r in refs],
                "bundles_to_node_id": placement_group_table(pgs[0]).get("bundles_to_node_id")}
    report("placement_group", strict_spread, lambda: (cancel_pending(), [remove_placement_group(p) for p in pgs]))

    # A remote driver's own object traffic, without a second raylet involved: the head's raylet is
    # the one the driver is connected to, so both objects cross only the driver's connection.
    def head_to_driver():
        arr_ref, meta_ref = produce.options(resources={"head": 0.01}).remote(3)
        submit(meta_ref)
        meta, arr = get(meta_ref), get(arr_ref)
        return {"producer": meta, "driver": here(), "sha256": digest(arr), "nbytes": int(arr.nbytes)}
    report("head_to_driver", head_to_driver, cancel_pending)

    def driver_put_to_head():
        arr = make_array(4)
        ref = ray.put(arr)
        return {"sha256": digest(arr),
                "consumer": get(submit(consume.options(resources={"head": 0.01}).remote(ref)))}
    report("driver_put_to_head", driver_put_to_head, cancel_pending)

    produced = []  # the producer's array ref, shared by the next two checks
    def worker_to_head():
        arr, meta = produce.options(resources={"worker": 0.01}).remote(1)
        produced.append((arr, meta))
        return {"producer": get(meta),
                "consumer": get(submit(consume.options(resources={"head": 0.01}).remote(arr)))}
    report("worker_to_head", worker_to_head, cancel_pending)

    def worker_to_driver():
        if not produced:
            raise RuntimeError("worker_to_head did not submit the producer")
        arr_ref, meta_ref = produced[0]
        try:
            arr = ray.get(arr_ref, timeout=TIMEOUT)
        except BaseException:
            submit(meta_ref)  # cancel the producer if its array never came
            raise
        return {"driver": here(), "sha256": digest(arr), "nbytes": int(arr.nbytes)}
    report("worker_to_driver", worker_to_driver, cancel_pending)

    def driver_put():
        arr = make_array(2)
        ref = ray.put(arr)
        return {"sha256": digest(arr),
                "consumer": get(submit(consume.options(resources={"worker": 0.01}).remote(ref)))}
    report("driver_put", driver_put, cancel_pending)

    ray.shutdown()
    print(MARK + json.dumps({"shutdown": {"ok": True}}), flush=True)
''')

# The local driver: started on the worker host, it should attach to that host's raylet.
LOCAL_DRIVER = textwrap.dedent('''
    import json, os, sys
    import rayredis as ray

    ray.init(address=sys.argv[1], _redis_password=os.environ["NETNS_TEST_REDIS_PASSWORD"])
    print("NETNS-RESULT " + json.dumps({"driver": {"ok": True, "value": {
        "node_id": ray.get_runtime_context().get_node_id()}}}), flush=True)
    ray.shutdown()
''')


@dataclass
class DriverRun:
    """What a driver script reported, check by check, plus how it ended."""

    host: str
    results: dict[str, dict[str, Any]]
    returncode: int
    stdout: str
    stderr: str
    #: Object segments in the driver host's /dev/shm after the driver exited (then removed).
    shm_left: list[str] = field(default_factory=list)


def run_driver(c: NetnsCluster, host: str, script: str, *args: str) -> DriverRun:
    path = c.root / f"driver-{host}.py"
    path.write_text(script)
    res = c.run(host, [sys.executable, str(path), c.address, *args], DRIVER_TIMEOUT_S,
                NETNS_TEST_REDIS_PASSWORD=c.password)
    results: dict[str, dict[str, Any]] = {}
    other = []
    for line in res.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            results.update(json.loads(line[len(RESULT_MARK):]))
        else:
            other.append(line)
    run = DriverRun(host, results, res.returncode, "\n".join(other), res.stderr)
    if host not in c.node_ids:  # a host without a raylet: nothing there owns object segments
        listing = c.run(host, ["ls", "/dev/shm"], 30).stdout.split()
        run.shm_left = [n for n in listing if n.startswith("rayredis_")]
        if run.shm_left:  # reported by a test; removed so that the teardown check does not repeat it
            c.run(host, ["rm", "-f", *(f"/dev/shm/{n}" for n in run.shm_left)], 30)
    return run


def check(c: NetnsCluster, run: DriverRun, name: str) -> Any:
    """The value of check ``name``, or a failure saying how it failed, with the nodes' logs."""
    r = run.results.get(name)
    if r is not None and r["ok"]:
        return r["value"]
    how = (f"failed after {r['seconds']} s: {r['error']}\n{r['traceback']}" if r is not None else
           f"never reported: the driver exited {run.returncode}\ndriver stderr:\n{tail(run.stderr, 40)}")
    pytest.fail(f"check {name!r} of the driver on the {run.host} host {how}\n"
                f"driver output other than results:\n{tail(run.stdout, 15)}\n{c.logs()}")


def expect(c: NetnsCluster, run: DriverRun, name: str, ok: bool, what: str) -> None:
    if not ok:
        pytest.fail(f"check {name!r} of the driver on the {run.host} host: {what}\n"
                    f"result: {json.dumps(run.results.get(name))[:3000]}\n{c.logs()}")


@pytest.fixture(scope="module")
def remote(cluster: NetnsCluster) -> DriverRun:
    """The driver on the driver host (no raylet there), run once for the checks below."""
    return run_driver(cluster, "driver", DRIVER, cluster.ip("head"), str(GET_TIMEOUT_S))


def placed(c: NetnsCluster, where: dict[str, str], host: str) -> bool:
    """``where`` (a task's report) says it ran on ``host``: by the node ID and by its own IP."""
    return where["node_id"] == c.node_ids[host] and where["ip"] == c.ip(host)


def test_two_alive_nodes_with_distinct_addresses(cluster: NetnsCluster, remote: DriverRun) -> None:
    nodes = check(cluster, remote, "nodes")
    expect(cluster, remote, "nodes", len(nodes) == 2, f"{len(nodes)} alive nodes, expected 2")
    by_ip = {n["ip"]: n for n in nodes}
    expect(cluster, remote, "nodes", set(by_ip) == {cluster.ip("head"), cluster.ip("worker")},
           f"NodeManagerAddress {sorted(by_ip)}, expected the head's and the worker's IPs")
    for host in ("head", "worker"):
        n = by_ip[cluster.ip(host)]
        expect(cluster, remote, "nodes", n["node_id"] == cluster.node_ids[host] and n["resources"].get(host) == 1,
               f"the node at {cluster.ip(host)} is not the {host} node the CLI started")


def test_tasks_run_on_the_node_with_their_resource(cluster: NetnsCluster, remote: DriverRun) -> None:
    got = check(cluster, remote, "tasks")
    for host in ("head", "worker"):
        expect(cluster, remote, "tasks", "error" not in got[host],
               f"the task with resources={{'{host}': 0.01}} failed: {got[host].get('error')}")
        expect(cluster, remote, "tasks", placed(cluster, got[host], host),
               f"the task with resources={{'{host}': 0.01}} did not run on the {host} node")
    expect(cluster, remote, "tasks", got["head"]["node_id"] != got["worker"]["node_id"],
           "both tasks report the same node ID")


def test_actor_on_worker_answers_in_order(cluster: NetnsCluster, remote: DriverRun) -> None:
    got = check(cluster, remote, "actor")
    expect(cluster, remote, "actor", placed(cluster, got["where"], "worker"), "the actor is not on the worker node")
    expect(cluster, remote, "actor", got["counts"] == list(range(1, 21)), "the calls were not answered in order")


def test_strict_spread_placement_group_uses_both_nodes(cluster: NetnsCluster, remote: DriverRun) -> None:
    got = check(cluster, remote, "placement_group")
    placement = set((got["bundles_to_node_id"] or {}).values())
    expect(cluster, remote, "placement_group", placement == set(cluster.node_ids.values()),
           "the GCS did not reserve one bundle on each node")
    for i, b in enumerate(got["bundles"]):
        expect(cluster, remote, "placement_group", "error" not in b,
               f"the task in bundle {i} failed: {b.get('error')}")
    hosts = [next((h for h in ("head", "worker") if placed(cluster, b, h)), None) for b in got["bundles"]]
    expect(cluster, remote, "placement_group", sorted(map(str, hosts)) == ["head", "worker"],
           f"the two bundles' tasks did not run one on each host (ran on {hosts})")


def test_large_object_from_head_reaches_remote_driver(cluster: NetnsCluster, remote: DriverRun) -> None:
    got = check(cluster, remote, "head_to_driver")
    expect(cluster, remote, "head_to_driver", placed(cluster, got["producer"], "head"),
           "the producer did not run on the head node")
    expect(cluster, remote, "head_to_driver", got["driver"]["ip"] == cluster.ip("driver"),
           "the driver did not run on the driver host")
    expect(cluster, remote, "head_to_driver", got["nbytes"] == 100 * 1024 * 1024
           and got["sha256"] == got["producer"]["sha256"], "the driver read other bytes than the head task wrote")


def test_remote_driver_put_is_read_on_head(cluster: NetnsCluster, remote: DriverRun) -> None:
    got = check(cluster, remote, "driver_put_to_head")
    expect(cluster, remote, "driver_put_to_head", placed(cluster, got["consumer"], "head"),
           "the consumer did not run on the head node")
    expect(cluster, remote, "driver_put_to_head", got["consumer"]["nbytes"] == 100 * 1024 * 1024
           and got["consumer"]["sha256"] == got["sha256"], "the head task read other bytes than the driver put")


def test_large_object_from_worker_reaches_head_task(cluster: NetnsCluster, remote: DriverRun) -> None:
    got = check(cluster, remote, "worker_to_head")
    expect(cluster, remote, "worker_to_head", placed(cluster, got["producer"], "worker"),
           "the producer did not run on the worker node")
    expect(cluster, remote, "worker_to_head", placed(cluster, got["consumer"], "head"),
           "the consumer did not run on the head node")
    expect(cluster, remote, "worker_to_head", got["consumer"]["nbytes"] == 100 * 1024 * 1024
           and got["consumer"]["sha256"] == got["producer"]["sha256"], "the head task read other bytes")


def test_large_object_from_worker_reaches_driver(cluster: NetnsCluster, remote: DriverRun) -> None:
    got = check(cluster, remote, "worker_to_driver")
    produced = check(cluster, remote, "worker_to_head")["producer"]
    expect(cluster, remote, "worker_to_driver", got["driver"]["ip"] == cluster.ip("driver"),
           "the driver did not run on the driver host")
    expect(cluster, remote, "worker_to_driver", got["nbytes"] == 100 * 1024 * 1024
           and got["sha256"] == produced["sha256"], "the driver read other bytes than the worker wrote")


def test_driver_put_is_read_on_worker(cluster: NetnsCluster, remote: DriverRun) -> None:
    got = check(cluster, remote, "driver_put")
    expect(cluster, remote, "driver_put", placed(cluster, got["consumer"], "worker"),
           "the consumer did not run on the worker node")
    expect(cluster, remote, "driver_put", got["consumer"]["nbytes"] == 100 * 1024 * 1024
           and got["consumer"]["sha256"] == got["sha256"], "the worker task read other bytes than the driver put")


def test_remote_driver_shuts_down_cleanly(cluster: NetnsCluster, remote: DriverRun) -> None:
    expect(cluster, remote, "shutdown", "shutdown" in remote.results and remote.returncode == 0,
           f"the driver exited {remote.returncode}:\n{tail(remote.stderr, 40)}")


def test_remote_driver_leaves_no_segments_on_its_host(cluster: NetnsCluster, remote: DriverRun) -> None:
    # No raylet runs on the driver host, so nothing may create object segments in its /dev/shm:
    # a remote driver's objects travel over its connection to the head's raylet.
    expect(cluster, remote, "driver_put_to_head", not remote.shm_left,
           f"after the driver exited, its host's /dev/shm held {remote.shm_left}: the driver wrote objects "
           "into its own host's shared memory, where no raylet can read or free them")


def test_driver_on_worker_host_attaches_to_its_raylet(cluster: NetnsCluster) -> None:
    local = run_driver(cluster, "worker", LOCAL_DRIVER)
    got = check(cluster, local, "driver")
    expect(cluster, local, "driver", got["node_id"] == cluster.node_ids["worker"],
           f"the driver attached to node {got['node_id']}, not to its host's node {cluster.node_ids['worker']} "
           f"(the head is {cluster.node_ids['head']})")
    expect(cluster, local, "driver", local.returncode == 0, f"the driver exited {local.returncode}")
