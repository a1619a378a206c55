"""The ``rayredis`` command line, run as real subprocesses against real clusters in a private temp dir."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from rayredis._private import process
from rayredis._private.redis_server import free_port
from rayredis._private.session import session_shm_tag
from rayredis.store import keys

CLI = [sys.executable, "-m", "rayredis.cli.main"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment of every command: its own temp dir, no inherited cluster address or password."""
    e = dict(os.environ, RAYREDIS_TEMP_DIR=str(tmp_path / "rr"), PYTHONUNBUFFERED="1")
    for name in ("RAYREDIS_ADDRESS", "RAY_ADDRESS", "RAYREDIS_REDIS_PASSWORD"):
        e.pop(name, None)
    return e


def cli(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    if ok:
        assert res.returncode == 0, f"rayredis {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


def current_cluster(env: dict[str, str]) -> dict[str, str]:
    with open(os.path.join(env["RAYREDIS_TEMP_DIR"], "current_cluster")) as f:
        return dict(json.load(f))


def cli_session_dirs(env: dict[str, str]) -> list[str]:
    reg = Path(env["RAYREDIS_TEMP_DIR"]) / "cli_sessions"
    return [json.loads(p.read_text())["session_dir"] for p in sorted(reg.glob("*.json"))]


def shm_of(session_dir: str) -> list[str]:
    tag = session_shm_tag(session_dir)
    return [n for n in os.listdir("/dev/shm") if n.startswith(tag)]


def active_nodes(status_out: str) -> list[str]:
    block = status_out.split("Active:", 1)[1].split("Pending:", 1)[0]
    return re.findall(r"^ 1 node_([0-9a-f]+)$", block, re.M)


def start_head(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(env, "start", "--head", "--port", str(free_port()), "--num-cpus", "2",
               "--object-store-memory", str(256 * 1024**2), *extra)


DRIVER = textwrap.dedent("""
    import json, subprocess, sys
    import rayredis

    rayredis.init(address="auto")

    @rayredis.remote
    def square(x):
        return x * x

    @rayredis.remote(num_cpus=0)
    class Holder:
        def __init__(self):
            self.ref = rayredis.put(b"y" * 300_000)  # outlives the driver, in shared memory

        def ready(self):
            return True

    assert rayredis.get([square.remote(i) for i in range(4)]) == [0, 1, 4, 9]
    holder = Holder.options(name="holder", lifetime="detached").remote()
    assert rayredis.get(holder.ready.remote())
    held = rayredis.put(b"x" * 300_000)  # big enough for shared memory: an object table entry
    dump = subprocess.run([sys.executable, "-m", "rayredis.cli.main", "state", "dump", "--json"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    print("OBJECT", held.hex())
    print("DUMP", json.dumps(json.loads(dump)))
""")


def test_cluster_lifecycle(env: dict[str, str]) -> None:
    out = start_head(env, "--num-redis-shards", "2").stdout
    try:
        assert "Local node IP: 127.0.0.1" in out
        assert "rayredis runtime started." in out
        info = current_cluster(env)
        address, password = info["address"], info["password"]
        assert f"rayredis start --address='{address}' --redis-password='{password}'" in out
        assert "rayredis.init()" in out and "rayredis stop" in out and "rayredis status" in out

        status = cli(env, "status").stdout
        assert "======== Cluster status:" in status
        head_nodes = active_nodes(status)
        assert len(head_nodes) == 1, status
        assert " 0.0/2.0 CPU" in status
        assert " 0B/256.00MiB object_store_memory" in status
        assert " (no resource demands)" in status

        driver = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True,
                                timeout=60)
        assert driver.returncode == 0, driver.stdout + driver.stderr
        lines = dict(line.split(" ", 1) for line in driver.stdout.splitlines() if " " in line)
        live = json.loads(lines["DUMP"])
        assert [j["state"] for j in live["jobs"]] == ["RUNNING"]
        obj = [o for o in live["objects"] if o["object_id"] == lines["OBJECT"]]
        assert obj and obj[0]["locations"] == head_nodes and obj[0]["size"] >= 300_000
        assert [a["state"] for a in live["actors"]] == ["ALIVE"] and live["actors"][0]["name"] == "holder"
        assert "spec" not in live["actors"][0] and live["actors"][0]["spec_bytes"] > 0
        squares = [t for t in live["tasks"] if t["state"] == "FINISHED"]
        assert len(squares) >= 4 and all(t["node"] == head_nodes[0] and t["spec_bytes"] > 0 for t in squares)
        assert len(live["functions"]) == 2

        client = redis.Redis.from_url(f"redis://:{password}@{address}", decode_responses=True)
        token = str(client.hget(keys.cluster_key(), "token"))
        client.close()
        text = cli(env, "state", "dump").stdout
        for dump in (text, cli(env, "state", "dump", "--json").stdout):
            assert token not in dump and password not in dump and "<redacted>" in dump
        assert "Jobs (1)" in text and "FINISHED" in text and head_nodes[0] in text
        assert re.search(rf"^  {head_nodes[0]}  state=ALIVE heartbeat=\d+", text, re.M), text

        joined = cli(env, "start", "--address", address, "--num-cpus", "1").stdout
        assert "Joined the rayredis cluster at" in joined
        status = cli(env, "status").stdout
        assert len(active_nodes(status)) == 2, status
        assert " 0.0/3.0 CPU" in status
        # The state CLI finds the cluster and its password as `status` does, and sees both nodes' logs.
        listed = json.loads(cli(env, "list", "nodes", "--format", "json").stdout)
        assert [n["state"] for n in listed] == ["ALIVE", "ALIVE"]
        assert head_nodes[0] in {n["node_id"] for n in listed}
        assert [a["name"] for a in json.loads(cli(env, "list", "actors", "--format", "json").stdout)] == ["holder"]
        logs = cli(env, "logs", "--glob", "raylet*.log").stdout
        assert logs.count("Node ID: ") == 2 and logs.count("  raylet.log  (") == 2, logs

        wrong = cli(env, "status", "--address", address, "--redis-password", "wrong", ok=False)
        assert wrong.returncode == 1 and "refused our credentials" in wrong.stderr
        assert "--redis-password" in wrong.stderr
        elsewhere = dict(env, RAYREDIS_TEMP_DIR=env["RAYREDIS_TEMP_DIR"] + "-elsewhere")  # no cluster file
        missing = cli(elsewhere, "status", "--address", address, ok=False)
        assert missing.returncode == 1 and "requires a password and none was given" in missing.stderr

        other = cli(env, "stop", "--address", f"127.0.0.1:{free_port()}").stdout  # another cluster: none here
        assert "Did not find any active rayredis processes." in other
        assert len(active_nodes(cli(env, "status").stdout)) == 2
        sessions = cli_session_dirs(env)
        assert len(sessions) == 2
        procs = [r for s in sessions for r in process.recorded(s)]
        assert procs and all(process.is_alive(r) for r in procs)
        assert shm_of(sessions[0]) or shm_of(sessions[1])  # the detached actor's object
        # A segment a crashed process would leave behind: `stop` removes it by the session tag.
        stray = Path("/dev/shm") / f"{session_shm_tag(sessions[1])}000000_stray"
        stray.write_bytes(b"")
        stop = cli(env, "stop", "--address", address).stdout
        assert re.search(r"^Stopped all \d+ rayredis processes\.$", stop, re.M), stop
        assert not [r for r in procs if process.is_alive(r)]
        assert not any(shm_of(s) for s in sessions)
        assert not os.path.exists(os.path.join(env["RAYREDIS_TEMP_DIR"], "current_cluster"))
        assert "Did not find any active rayredis processes." in cli(env, "stop").stdout
        gone = cli(env, "status", ok=False)
        assert gone.returncode == 1 and "Could not find any running rayredis cluster" in gone.stderr
    finally:
        cli(env, "stop", "--force", ok=False)


def test_password_from_the_environment_is_not_printed(env: dict[str, str]) -> None:
    secret = "env-secret-0123456789"
    out = start_head(dict(env, RAYREDIS_REDIS_PASSWORD=secret)).stdout
    try:
        assert secret not in out
        assert f"rayredis start --address='{current_cluster(env)['address']}' " \
               '--redis-password="$RAYREDIS_REDIS_PASSWORD"' in out
        assert current_cluster(env)["password"] == secret  # local drivers and the CLI still find it
        assert len(active_nodes(cli(env, "status").stdout)) == 1
    finally:
        cli(env, "stop", "--force", ok=False)


def test_bad_resources_json(env: dict[str, str]) -> None:
    res = cli(env, "start", "--head", "--port", "0", "--resources", "{Custom: 4}", ok=False)
    assert res.returncode == 1
    assert """--resources='{"Custom": 4}'""" in res.stderr
    assert "Traceback" not in res.stderr
    assert not cli_session_dirs(env)
    res = cli(env, "start", "--head", "--port", "0", "--resources", '{"CPU": 4}', ok=False)
    assert res.returncode == 1 and "--num-cpus" in res.stderr


def test_head_with_address_and_missing_mode(env: dict[str, str]) -> None:
    res = cli(env, "start", "--head", "--address", "127.0.0.1:6379", ok=False)
    assert res.returncode == 1 and "--head and --address cannot be used together" in res.stderr
    res = cli(env, "start", ok=False)
    assert res.returncode == 1 and "--head" in res.stderr and "--address" in res.stderr
    res = cli(env, "start", "--address", "127.0.0.1:6379", "--port", "1234", ok=False)
    assert res.returncode == 1 and "If --head is not passed in, --port is not allowed." in res.stderr


def test_status_without_cluster_and_version(env: dict[str, str]) -> None:
    res = cli(env, "status", ok=False)
    assert res.returncode == 1 and "Could not find any running rayredis cluster" in res.stderr
    res = cli(env, "status", "--address", f"127.0.0.1:{free_port()}", ok=False)
    assert res.returncode == 1 and "Could not reach" in res.stderr
    assert "Did not find any active rayredis processes." in cli(env, "stop").stdout
    assert re.match(r"rayredis, version \d+\.\d+", cli(env, "--version").stdout)


def _start_blocking(env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*CLI, "start", "--head", "--port", str(free_port()), "--num-cpus", "1", "--block"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while (res := cli(env, "status", ok=False)).returncode != 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"the blocking head did not come up: {res.stderr}"
        time.sleep(0.1)
    return proc


def test_block_stops_cluster_on_sigterm(env: dict[str, str]) -> None:
    proc = _start_blocking(env)
    try:
        (session,) = cli_session_dirs(env)
        procs = process.recorded(session)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + err
        assert "This command will now block forever until terminated by a signal." in out
        assert "Received SIGTERM" in out
        assert not [r for r in procs if process.is_alive(r)]
        assert not os.path.exists(os.path.join(env["RAYREDIS_TEMP_DIR"], "current_cluster"))
        assert "Did not find any active rayredis processes." in cli(env, "stop").stdout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        cli(env, "stop", "--force", ok=False)


def test_block_without_restarts_reports_a_death_and_stops(env: dict[str, str]) -> None:
    """With restarts turned off (supervisor_max_restarts=0), a dead raylet stops the node: exit 1."""
    proc = _start_blocking(dict(env, RAYREDIS_SUPERVISOR_MAX_RESTARTS="0"))
    try:
        (session,) = cli_session_dirs(env)
        procs = process.recorded(session)
        (raylet,) = [r for r in procs if r.role == "raylet"]
        os.kill(raylet.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 1, out + err
        assert f"[pid={raylet.pid}, exit_code=-9] exited, and it was restarted 0 times" in err
        assert "giving up (supervisor_max_restarts=0)" in err
        assert "Remaining processes will be killed." in err
        assert not [r for r in procs if process.is_alive(r)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        cli(env, "stop", "--force", ok=False)


def test_stop_ends_blocking_start(env: dict[str, str]) -> None:
    proc = _start_blocking(env)
    try:
        assert re.search(r"^Stopped all \d+ rayredis processes\.$", cli(env, "stop").stdout, re.M)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + err
        assert "`rayredis stop` stopped the processes of this node" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        cli(env, "stop", "--force", ok=False)


def test_block_restarts_a_dead_gcs(env: dict[str, str], tmp_path: Path) -> None:
    proc = _start_blocking(env)
    try:
        (session,) = cli_session_dirs(env)
        (gcs,) = [r for r in process.recorded(session) if r.role == "gcs" and process.is_alive(r)]
        os.kill(gcs.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:
            new = [r for r in process.recorded(session)
                   if r.role == "gcs" and r.pid != gcs.pid and process.is_alive(r)]
            if new:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no replacement GCS was started"
            time.sleep(0.1)
        # The replacement serves: a new driver registers its job and creates an actor through it.
        driver = tmp_path / "after_restart.py"
        driver.write_text(textwrap.dedent("""
            import rayredis as ray
            ray.init(address="auto")
            @ray.remote
            class A:
                def ping(self):
                    return "pong"
            print(ray.get(A.remote().ping.remote(), timeout=60))
        """))
        res = subprocess.run([sys.executable, str(driver)], env=env, capture_output=True, text=True, timeout=90)
        assert res.returncode == 0 and "pong" in res.stdout, res.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, out + err
        assert f"The GCS [pid={gcs.pid}, exit_code=-9] exited; started a replacement" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        cli(env, "stop", "--force", ok=False)


def test_health_check(env: dict[str, str]) -> None:
    """Healthy once the cluster answers and the nodes started on this machine are ALIVE (a container's
    healthcheck: each container has a temp dir, so a registry, of its own)."""
    none = cli(env, "health-check", ok=False)
    assert none.returncode == 1 and "Could not find any running rayredis cluster" in none.stderr
    node_env = dict(env, RAYREDIS_TEMP_DIR=env["RAYREDIS_TEMP_DIR"] + "-node")
    try:
        start_head(env)
        cli(env, "health-check")
        info = current_cluster(env)
        node_env.update(RAYREDIS_ADDRESS=info["address"], RAYREDIS_REDIS_PASSWORD=info["password"])  # as in compose
        cli(node_env, "start", "--address", info["address"], "--num-cpus", "1")
        cli(node_env, "health-check")
        cli(env, "health-check")  # a node of this cluster started elsewhere is not checked here
        (session,) = cli_session_dirs(node_env)
        (raylet,) = [r for r in process.recorded(session) if r.role == "raylet"]
        os.kill(raylet.pid, signal.SIGKILL)
        sick = cli(node_env, "health-check", ok=False)
        assert sick.returncode == 1 and sick.stderr.startswith("unhealthy: "), sick.stderr
        assert "is not running" in sick.stderr or "is DEAD" in sick.stderr, sick.stderr
    finally:
        cli(node_env, "stop", "--force", ok=False)
        cli(env, "stop", "--force", ok=False)
