"""``python -m chaos.runner --compose``: the known-answer workload in the compose cluster while docker faults fire.

    python -m chaos.runner --compose --seed 1 --duration 120 --faults gcs,node,redis,pause,freeze,partition

The cluster is docker-compose.yml, derived (a file of its own in a temp dir): the head raylet holds
chaos slot 0 and each of ``--workers`` worker services (``worker1`` ...) the next slot, at a fixed IP
on a network with its own subnet (so a worker reconnected after a partition keeps its address), and
the driver service mounts ``chaos/`` and a directory shared with this process. The workload runs in
the driver container (``chaos.compose_driver``); the faults run here, through docker, on the
schedule ``chaos.runner`` uses, and the report is ``chaos.runner``'s, from the same items and fault
records. Faults (each does the operator's repair too, as ``chaos.faults`` does):

``gcs``        SIGKILL of the GCS container's init from the host (a crash: ``docker kill`` counts as a
               deliberate stop, which restart policies leave alone); its restart policy brings it back.
``node``       ``docker kill`` of a worker container (node death: its work moves), then ``docker start``.
``redis``      a crash of a Redis shard container (primary or data shard); it restarts from its AOF.
``pause``      ``docker pause`` of a worker for ``--pause-min``..``--pause-max`` s: no node may be declared dead.
``freeze``     ``docker pause`` for ``--freeze-min``..``--freeze-max`` s, beyond the node-death timeout: the
               node is declared dead, and the raylet fences itself once unpaused (a new node ID).
``partition``  ``docker network disconnect`` of a worker for ``--partition-min``..``--partition-max`` s, then
               ``connect`` with its IP.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import yaml  # type: ignore[import-untyped]  # (pyyaml, of the test extra; no stubs installed)

from chaos.cluster import CAPACITY, NODE_RESOURCE, slot_resource
from chaos.faults import Planned, plan_schedule

ROOT = Path(__file__).resolve().parents[1]
LABEL = "com.docker.compose.project"
KINDS = ("gcs", "node", "redis", "pause", "freeze", "partition")


def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(f"[chaos-compose] {msg}", file=sys.stderr, flush=True)


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({res.returncode}): {res.stdout}{res.stderr}")
    return res


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


def free_subnet() -> str:
    """A /24 no docker network uses (the derived file fixes the workers' IPs in it)."""
    used = docker("network", "inspect", *docker("network", "ls", "-q").stdout.split(),
                  "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}").stdout.split()
    nets = [ipaddress.ip_network(u, strict=False) for u in used if "." in u]
    for n in range(16, 256):
        cand = ipaddress.ip_network(f"172.29.{n}.0/24")
        if not any(cand.overlaps(u) for u in nets):
            return str(cand)
    raise RuntimeError("no free 172.29.x.0/24 subnet for the chaos compose network")


class ComposeProject:
    """One compose project of the derived file: up, down, and the docker operations the faults use."""

    def __init__(self, workers: int = 2, num_cpus: float = 2, name: str = "", image: str = "",
                 password: str = "", out: str = ""):
        self.workers = workers
        self.num_cpus = num_cpus
        self.name = name or f"rrchaos{secrets.token_hex(4)}"
        self.image = image or os.environ.get("RAYREDIS_IMAGE", "rayredis:local")
        self.password = password or secrets.token_hex(16)
        self.out = out or tempfile.mkdtemp(prefix="rayredis-compose-chaos-")
        self.file = os.path.join(self.out, "docker-compose.chaos.yml")
        self.subnet = ""
        self.ips: dict[str, str] = {}
        self._probe_lock = threading.Lock()

    @property
    def slots(self) -> int:
        return self.workers + 1

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAYREDIS_", "RAY_", "COMPOSE_"))}
        env.update(RAYREDIS_REDIS_PASSWORD=self.password, RAYREDIS_IMAGE=self.image,
                   RAYREDIS_SHM_SIZE=os.environ.get("RAYREDIS_SHM_SIZE", "1gb"))
        return env

    def derive(self) -> dict[str, Any]:
        """docker-compose.yml with chaos slots, fixed worker IPs and the driver's mounts."""
        with open(ROOT / "docker-compose.yml") as f:
            spec: dict[str, Any] = yaml.safe_load(f)  # (merge keys resolved: every service is complete)
        spec = {k: v for k, v in spec.items() if not k.startswith("x-")}
        services = spec["services"]
        for svc in services.values():
            svc.pop("build", None)  # the image is built already (deploy/docker-setup.sh --images)
        net = ipaddress.ip_network(self.subnet)
        spec["networks"] = {"default": {"ipam": {"config": [{"subnet": self.subnet}]}}}
        cpus = str(self.num_cpus)
        head = services["head"]
        head["command"] = head["command"].replace(
            "--num-cpus ${RAYREDIS_HEAD_CPUS:-2}", f"--num-cpus {cpus}").split() + [
            "--resources", json.dumps({slot_resource(0): CAPACITY, NODE_RESOURCE: CAPACITY})]
        template = services.pop("worker")
        for k in range(1, self.slots):
            ip = str(net.network_address + 100 + k)
            self.ips[f"worker{k}"] = ip
            w = dict(template, hostname=f"worker{k}", networks={"default": {"ipv4_address": ip}})
            w["command"] = template["command"].replace(
                "--num-cpus ${RAYREDIS_WORKER_CPUS:-2}", f"--num-cpus {cpus}").split() + [
                "--resources", json.dumps({slot_resource(k): CAPACITY, NODE_RESOURCE: CAPACITY})]
            services[f"worker{k}"] = w
        driver = services["driver"]
        driver["environment"] = dict(driver["environment"], PYTHONPATH="/opt/rayredis")
        driver["volumes"] = [f"{ROOT / 'chaos'}:/opt/rayredis/chaos:ro", f"{self.out}:/out"]
        return spec

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [*compose_command(), "-f", self.file, "-p", self.name, "--profile", "driver", *args]
        res = subprocess.run(argv, cwd=self.out, env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}):\n{res.stdout}{res.stderr}")
        return res

    def up(self, timeout_s: float = 240) -> None:
        self.subnet = free_subnet()
        with open(self.file, "w") as f:
            yaml.safe_dump(self.derive(), f, sort_keys=False)
        self.compose("up", "-d", *self.long_running(), timeout=timeout_s)
        for s in self.long_running():
            self.wait_healthy(s, timeout_s)

    def long_running(self) -> list[str]:
        return ["redis-primary", "redis-shard1", "gcs", "head", *(f"worker{k}" for k in range(1, self.slots))]

    def down(self) -> dict[str, list[str]]:
        """``down -v``; what of the project is left afterwards (nothing, normally)."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", "30", timeout=300, check=False)
        flt = ["--filter", f"label={LABEL}={self.name}"]
        left = {"containers": docker("ps", "-aq", *flt).stdout.split(),
                "networks": docker("network", "ls", "-q", *flt).stdout.split(),
                "volumes": docker("volume", "ls", "-q", *flt).stdout.split()}
        for c in left["containers"]:
            docker("rm", "-f", "-v", c, check=False)
        return left

    # ---- what the faults use ----------------------------------------------------------------------

    def container(self, service: str) -> str:
        found = docker("ps", "-aq", "--filter", f"label={LABEL}={self.name}",
                       "--filter", f"label=com.docker.compose.service={service}").stdout.split()
        if len(found) != 1:
            raise RuntimeError(f"expected one container of {service}, found {found}")
        return found[0]

    def state(self, service: str) -> dict[str, Any]:
        return dict(json.loads(docker("inspect", "--format", "{{json .}}", self.container(service)).stdout))

    def wait_healthy(self, service: str, timeout_s: float = 120, restarts_above: int = -1) -> float:
        """Seconds until ``service`` runs (restarted more than ``restarts_above`` times) and is healthy."""
        start = time.monotonic()
        while True:
            st = self.state(service)
            if st["RestartCount"] > restarts_above and st["State"].get("Running") and \
                    st["State"].get("Health", {}).get("Status") == "healthy":
                return time.monotonic() - start
            if time.monotonic() - start > timeout_s:
                raise RuntimeError(f"{service} not healthy after {timeout_s} s: {st['State']}")
            time.sleep(0.2)

    def crash(self, service: str) -> int:
        """SIGKILL the container's init from the host: every process of it dies, as in a crash; its
        restart count before (the restart policy restarts it, unlike after ``docker kill``)."""
        st = self.state(service)
        os.kill(int(st["State"]["Pid"]), 9)
        return int(st["RestartCount"])

    def node_id(self, service: str) -> str:
        res = docker("exec", self.container(service), "python", "-c",
                     "from rayredis.cli import sessions; print(*[s.node_id for s in sessions.registered()])",
                     check=False, timeout=60)
        ids = res.stdout.split()
        return ids[-1] if ids else ""

    def healthy_now(self, service: str) -> bool:
        return docker("exec", self.container(service), "rayredis", "health-check", check=False,
                      timeout=60).returncode == 0

    def network(self) -> str:
        return f"{self.name}_default"

    def request_probe(self, index: int, what: str, slot: int | None) -> None:
        with self._probe_lock, open(os.path.join(self.out, "probes.jsonl"), "a") as f:
            f.write(json.dumps({"index": index, "what": what, "slot": slot}) + "\n")


# ---- the run ------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m chaos.runner --compose", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of workload (default 60)")
    ap.add_argument("--faults", default=",".join(KINDS), help=f"comma-separated: {', '.join(KINDS)} (default all)")
    ap.add_argument("--workers", type=int, default=2, help="worker containers (default 2; slots 1..N)")
    ap.add_argument("--mean-interval", type=float, default=8.0, help="mean seconds between faults (default 8)")
    ap.add_argument("--order", choices=("cycle", "random"), default="cycle")
    ap.add_argument("--pause-min", type=float, default=0.5)
    ap.add_argument("--pause-max", type=float, default=2.0)
    ap.add_argument("--freeze-min", type=float, default=7.0, help="shortest long pause (default 7 s)")
    ap.add_argument("--freeze-max", type=float, default=9.0)
    ap.add_argument("--partition-min", type=float, default=1.0)
    ap.add_argument("--partition-max", type=float, default=2.0)
    ap.add_argument("--restart-timeout", type=float, default=60.0,
                    help="seconds a crashed container may take to be healthy again (default 60)")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--cooldown", type=float, default=None, help="no faults in the last seconds (default min(12, d/4))")
    ap.add_argument("--item-timeout", type=float, default=60.0)
    ap.add_argument("--settle-timeout", type=float, default=30.0)
    ap.add_argument("--max-inflight", type=int, default=40)
    ap.add_argument("--num-actors", type=int, default=3)
    ap.add_argument("--new-actor-interval", type=float, default=1.0)
    ap.add_argument("--pg-interval", type=float, default=2.0)
    ap.add_argument("--num-cpus", type=float, default=2, help="CPUs per node (default 2)")
    ap.add_argument("--build", action="store_true",
                    help="build RAYREDIS_IMAGE from this checkout first (deploy/docker-setup.sh --images)")
    ap.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    spec = args.faults.strip()
    args.faults = [] if spec in ("", "none") else [f.strip() for f in spec.split(",")]
    from chaos.compose_faults import FAULT_CLASSES

    unknown = [f for f in args.faults if f not in FAULT_CLASSES]
    if unknown:
        raise ValueError(f"unknown compose fault kinds {unknown}: choose from {', '.join(KINDS)}")
    if args.workers < 1:
        raise ValueError("--workers must be at least 1 (the node, pause and partition faults hit workers)")
    from rayredis.config import get_config

    args.death_timeout = get_config().node_death_timeout_s
    if args.freeze_min <= args.death_timeout:
        raise ValueError(f"--freeze-min must exceed the node-death timeout ({args.death_timeout} s)")
    if args.cooldown is None:
        args.cooldown = min(12.0, args.duration / 4)
    args.nodes, args.netns, args.gcs_downtime = args.workers + 1, False, 0.0
    return args


def _wait_t0(p: ComposeProject, driver: subprocess.Popen[str], timeout_s: float) -> float:
    path = os.path.join(p.out, "t0.json")
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if driver.poll() is not None:
            raise RuntimeError(f"the driver exited ({driver.returncode}) before its workload started")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the driver's workload did not start within {timeout_s} s")
        time.sleep(0.1)
    time.sleep(0.05)  # (written in one go; a partial read would fail json.load just below otherwise)
    with open(path) as f:
        return float(json.load(f)["t0"])


def _driver_argv(p: ComposeProject, args: argparse.Namespace) -> list[str]:
    return ["run", "--rm", "-T", "driver", "python", "-m", "chaos.compose_driver", "--out", "/out",
            "--slots", str(p.slots), "--num-cpus", str(args.num_cpus), "--seed", str(args.seed),
            "--duration", str(args.duration), "--item-timeout", str(args.item_timeout),
            "--settle-timeout", str(args.settle_timeout), "--max-inflight", str(args.max_inflight),
            "--num-actors", str(args.num_actors), "--new-actor-interval", str(args.new_actor_interval),
            "--pg-interval", str(args.pg_interval)]


def run(args: argparse.Namespace, project: ComposeProject | None = None,
        plan: list[Planned] | None = None) -> dict[str, Any]:
    """Bring the project up (unless given one), run the workload with the faults, tear down; the report."""
    from chaos import runner
    from chaos.compose_faults import FAULT_CLASSES

    p = project or ComposeProject(args.workers, args.num_cpus)
    faults = {k: FAULT_CLASSES[k](args) for k in args.faults}
    if plan is None:
        plan = plan_schedule(args.seed, list(faults), args.mean_interval, args.warmup,
                             args.duration - args.cooldown, order=args.order)
    _log(f"planned faults: {[(q.t, q.kind) for q in plan]}", args.quiet)
    extra: dict[str, Any] = {}
    items: list[Any] = []
    thread: runner.FaultThread | None = None
    driver: subprocess.Popen[str] | None = None
    log_path = os.path.join(p.out, "driver.log")
    try:
        if project is None:
            if args.build:
                subprocess.run([str(ROOT / "deploy" / "docker-setup.sh"), "--images"], cwd=ROOT, check=True,
                               env=dict(os.environ, RAYREDIS_IMAGE=p.image), timeout=1200)
            p.up()
            _log(f"compose project {p.name} up: {p.slots} nodes, network {p.subnet}", args.quiet)
        for name in ("t0.json", "probes.jsonl", "items.pkl", "driver.json"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(p.out, name))
        with open(log_path, "w") as log:
            driver = subprocess.Popen([*compose_command(), "-f", p.file, "-p", p.name, *_driver_argv(p, args)],
                                      cwd=p.out, env=p.env(), stdout=log, stderr=subprocess.STDOUT, text=True)
        t0 = _wait_t0(p, driver, 240)
        thread = runner.FaultThread(plan, cast(Any, faults), cast(Any, p), args.seed, t0, args.quiet,
                                    probe=p.request_probe)
        thread.start()
        rc = driver.wait(timeout=args.duration + 2 * args.item_timeout + args.settle_timeout + 300)
        thread.stop.set()
        thread.join()
        if rc != 0:
            raise RuntimeError(f"the driver exited with {rc}; the end of {log_path}:\n{_tail(log_path)}")
        with open(os.path.join(p.out, "items.pkl"), "rb") as fb:
            items = pickle.load(fb)  # (written by our own driver, in our own temp dir)
        with open(os.path.join(p.out, "driver.json")) as f:
            extra.update(json.load(f))
    except Exception as e:  # noqa: BLE001 - reported: the run failed
        extra["runner_error"] = f"{type(e).__name__}: {e}"
        _log(extra["runner_error"], args.quiet)
    finally:
        if thread is not None:
            thread.stop.set()
            thread.join()
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        if project is None:
            left = p.down()
            extra["leftovers"] = {"processes": [f"{k}: {v}" for k, v in left.items() if v], "shm": []}
    fired = thread.fired if thread is not None else []
    report = _report(args, p, items, fired, plan, extra)
    if project is None:
        if report["passed"]:
            shutil.rmtree(p.out, ignore_errors=True)  # (the derived file, the driver's log and results)
        else:
            _log(f"kept {p.out} (the derived compose file, driver.log) for a look", args.quiet)
    return report


def _report(args: argparse.Namespace, p: ComposeProject, items: list[Any], fired: list[dict[str, Any]],
            plan: list[Planned], extra: dict[str, Any]) -> dict[str, Any]:
    from chaos import runner
    from chaos.compose_faults import FAULT_CLASSES

    dead = set(extra.get("dead_nodes", []))
    last_hit = {f["node_id"]: f["index"] for f in sorted(fired, key=lambda f: f["monotonic"]) if f.get("node_id")}
    for f in fired:  # a dead node's death is the last fault's that hit it
        if f.get("node_id") and f["kind"] in ("freeze", "partition", "pause"):
            f["declared_dead"] = f["node_id"] in dead and last_hit[f["node_id"]] == f["index"]
    expected = {f["node_id"] for f in fired if f["kind"] == "freeze" and f.get("node_id")}
    extra["dead_nodes"] = [n for n in extra.get("dead_nodes", []) if n not in expected]
    injected = [f for f in fired if not f.get("skipped")]
    extra["_restarts"] = runner.actor_restarts(injected, extra.pop("_final_restarts", {}))
    extra.setdefault("leftovers", {})
    extra.setdefault("process_deaths", [])
    extra["compose"] = {"project": p.name, "image": p.image, "workers": p.workers, "subnet": p.subnet}
    report = runner.build_report(args, items, fired, plan, "", extra)
    for kind, row in report["by_fault_kind"].items():
        if kind in FAULT_CLASSES:
            row["recovery_means"] = FAULT_CLASSES[kind].recovery
    if "freeze" in args.faults:
        fenced = [f for f in report["faults"] if f["kind"] == "freeze" and not f.get("skipped")]
        report["invariants"]["freeze_declared_dead"] = all(f.get("declared_dead") for f in fenced)
        report["passed"] = report["passed"] and report["invariants"]["freeze_declared_dead"]
    return report


def _tail(path: str, n: int = 40) -> str:
    with open(path) as f:
        return "".join(f.readlines()[-n:])


def main(argv: Sequence[str] | None = None) -> int:
    from chaos import runner

    try:
        args = parse_args(argv)
    except ValueError as e:
        print(f"chaos.runner --compose: {e}", file=sys.stderr)
        return 2
    report = run(args)
    print(runner.format_report(report), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
    return 0 if report["passed"] else 1
