"""Simulated hosts on one machine: Linux network namespaces joined by a bridge, which can be partitioned.

``hosts(["head", "worker", "driver"])`` creates, for one test run:

* a subnet ``10.213.X.0/24`` with ``X`` random;
* a "switch" namespace ``rayredis-net-10.213.X`` holding a bridge ``br0`` without an address: the
  hosts reach each other and nothing else, and nothing else reaches them;
* per host a network namespace ``rayredis-<tag>-<name>`` with ``lo`` up and ``eth0`` carrying
  ``10.213.X.<i+1>/24``, one end of a veth pair whose other end (``h<i>``) is on the bridge. A
  host has no default route: it can send to its subnet and nowhere else.

Creating a namespace name is atomic (the file under /run/netns), so the switch's name is the run's
lock on its subnet: parallel runs on one machine never share a subnet, and ``<tag>`` (X in hex plus
a random byte) keeps their namespace names apart. Every link lives inside the run's namespaces, so
no interface name can clash with the machine's, and deleting the namespaces deletes every link.

Why the bridge is not in the root namespace: with ``br_netfilter`` loaded (Docker loads it),
bridged frames pass the root namespace's iptables FORWARD chain, whose policy Docker sets to
DROP, so hosts on a root-namespace bridge cannot talk unless the machine's firewall or the global
``bridge-nf-call-iptables`` sysctl is changed. A fresh namespace has no rules, so its bridge
forwards everything, and the root namespace's network is not touched at all.

By default (``private_shm``) each host also has a mount namespace of its own with a private tmpfs
on ``/dev/shm``, held open by a sleeping process (``sleep infinity`` under ``unshare``), so that an
object in one host's shared memory cannot be read on another host without a real transfer; the
tmpfs and what is left in it vanish with the host. Otherwise the hosts share the filesystem, the
PID space and (without ``private_shm``) ``/dev/shm`` with the machine; the network is theirs alone
(abstract Unix sockets included: they are per network namespace). :meth:`Host.cmd` runs a
command on a host: ``nsenter`` into the holder's network and mount namespaces, or ``ip netns exec``.

A host can be cut off the network and healed (:func:`partition`, :func:`heal`): ``ebtables`` rules on
the switch drop every IPv4 frame to and from the host's bridge port (ARP still passes, so nobody gets
"no route to host": packets just vanish, as in a real partition). The rules live in the switch
namespace, so they go with it. A thread of this process can move into a host (:func:`enter`):
sockets it opens and processes it starts from then on are on that host's network.

Every run records its namespaces in ``/run/rayredis-netns/<switch>`` with its PID and start time;
:func:`sweep_stale` removes the namespaces of runs that died without tearing down (SIGKILL).

Needs root and ``ip`` with ``netns`` support; :func:`unavailable_reason` says why not, for a skip.
Used by the multi-host tests (``tests/integration/test_netns_cluster.py``) and by the chaos runner's
``--netns`` mode (``chaos/netns_cluster.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

#: The private /16 the per-run /24 subnets are carved from (unusual enough not to clash with a LAN).
SUBNET_PREFIX = "10.213"
_IP_TIMEOUT_S = 20.0
#: Where each run records its namespaces and owner (for :func:`sweep_stale`).
OWNERS_DIR = "/run/rayredis-netns"
_CLONE_NEWNET = 0x40000000


class NetnsError(RuntimeError):
    """An ``ip`` command failed while building or tearing down the hosts."""


@dataclass(frozen=True)
class Host:
    """One simulated host: a network namespace with one address on the shared bridge, and (with
    ``private_shm``) a mount namespace of its own with a private tmpfs on /dev/shm."""

    name: str  # the role given by the test: "head", "worker", ...
    netns: str  # the namespace's name for ``ip netns exec``
    ip: str
    holder_pid: int = 0  # the process holding the host's mount namespace (0: the machine's /dev/shm)
    port: str = ""  # the host's veth end on the bridge, in the switch namespace ("h<i>")

    def cmd(self, *args: str) -> list[str]:
        """``args`` prefixed so that they run on this host (its network and /dev/shm)."""
        if self.holder_pid:
            return ["nsenter", f"--target={self.holder_pid}", "--net", "--mount", "--", *args]
        return ["ip", "netns", "exec", self.netns, *args]

    def pids(self) -> list[int]:
        """PIDs of the processes currently inside this host's namespace."""
        res = _ip("netns", "pids", self.netns, check=False)
        return [int(p) for p in res.stdout.split() if p.isdigit()]


@dataclass
class Network:
    """The hosts of one test run, by name, and what must be removed at the end."""

    tag: str
    subnet: str
    switch: str  # the namespace holding the bridge
    hosts: dict[str, Host] = field(default_factory=dict)
    holders: list[subprocess.Popen[str]] = field(default_factory=list)
    #: Names of the hosts currently cut off by :func:`partition`.
    cut: set[str] = field(default_factory=set)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_IP_TIMEOUT_S)
    if check and res.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed (exit {res.returncode}): {res.stderr.strip()}")
    return res


def unavailable_reason(partitions: bool = False) -> str | None:
    """Why network-namespace hosts cannot be built here (None: they can); with ``partitions``, also
    why they cannot be cut off (:func:`partition` needs ``ebtables``)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to create network namespaces, veths and a bridge"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    missing = [c for c in ("nsenter", "unshare") if shutil.which(c) is None]
    if missing:
        return f"{' and '.join(missing)} (util-linux) not installed: needed for the hosts' private /dev/shm"
    if partitions and shutil.which("ebtables") is None:
        return "the `ebtables` command is not installed: needed to partition a host (package iptables or ebtables)"
    probe = f"rayredis-probe-{secrets.token_hex(3)}"
    try:
        res = _ip("netns", "add", probe, check=False)
        if res.returncode != 0:
            return f"`ip netns add` does not work here: {res.stderr.strip()}"
        lo = subprocess.run(["ip", "netns", "exec", probe, "ip", "link", "set", "lo", "up"],
                            capture_output=True, text=True, timeout=_IP_TIMEOUT_S)
        if lo.returncode != 0:
            return f"`ip netns exec` does not work here: {lo.stderr.strip()}"
        res = _ip("-n", probe, "link", "add", "br0", "type", "bridge", check=False)
        if res.returncode != 0:
            return f"cannot create a Linux bridge here: {res.stderr.strip()}"
        res = _ip("-n", probe, "link", "add", "v0", "type", "veth", "peer", "name", "v1", check=False)
        if res.returncode != 0:
            return f"cannot create a veth pair here: {res.stderr.strip()}"
        if partitions:
            eb = subprocess.run(["ip", "netns", "exec", probe, *_EB_DROP_IN("v0", "-A")], capture_output=True,
                                text=True, timeout=_IP_TIMEOUT_S)
            if eb.returncode != 0:
                return f"`ebtables` does not work in a network namespace here: {eb.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns` is not usable here: {e}"
    finally:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            _ip("netns", "del", probe, check=False)
    return None


def _used_subnets() -> set[str]:
    """The ``10.213.X`` prefixes already configured anywhere this process can see."""
    used: set[str] = set()
    texts = [_ip("-4", "-o", "addr", check=False).stdout, _ip("-4", "route", check=False).stdout]
    for ns in _ip("netns", "list", check=False).stdout.split("\n"):
        name = ns.split(" ", 1)[0].strip()
        if name:
            texts.append(_ip("-n", name, "-4", "-o", "addr", check=False).stdout)
    for text in texts:
        for word in text.replace("/", " ").split():
            parts = word.split(".")
            if len(parts) == 4 and ".".join(parts[:2]) == SUBNET_PREFIX:
                used.add(".".join(parts[:3]))
    return used


def _start_holder(net: Network, host: Host) -> Host:
    """Give ``host`` a mount namespace with a private /dev/shm, held by a sleeping process."""
    script = ("mount -t tmpfs -o mode=1777 rayredis-shm /dev/shm && mount --make-private /dev/shm "
              "&& echo ready && exec sleep infinity")
    proc = subprocess.Popen(host.cmd("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    net.holders.append(proc)
    assert proc.stdout is not None
    ready: list[str] = []
    reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline() if proc.stdout else ""),
                              daemon=True)
    reader.start()
    reader.join(_IP_TIMEOUT_S)
    if not ready or ready[0].strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=_IP_TIMEOUT_S)
        raise NetnsError(f"could not give host {host.name} a private /dev/shm: {err.strip() or 'timed out'}")
    return dataclasses.replace(host, holder_pid=proc.pid)


def _create(net: Network, names: Sequence[str], private_shm: bool) -> None:
    sw = net.switch
    _ip("-n", sw, "link", "add", "br0", "type", "bridge")
    _ip("-n", sw, "link", "set", "br0", "up")
    for i, name in enumerate(names):
        host = Host(name, f"rayredis-{net.tag}-{name}", f"{net.subnet}.{i + 1}", port=f"h{i}")
        _ip("netns", "add", host.netns)
        net.hosts[name] = host  # registered before anything else, so teardown deletes it
        _write_owner(net)
        _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip("-n", host.netns, "link", "add", "eth0", "type", "veth", "peer", "name", f"h{i}", "netns", sw)
        _ip("-n", sw, "link", "set", f"h{i}", "master", "br0")
        _ip("-n", sw, "link", "set", f"h{i}", "up")
        _ip("-n", host.netns, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        _ip("-n", host.netns, "link", "set", "eth0", "up")
        if private_shm:
            net.hosts[name] = host = _start_holder(net, host)


def _kill_remaining(net: Network, grace_s: float = 2.0) -> list[str]:
    """SIGTERM, then SIGKILL, whatever still runs inside the hosts (every such process was started
    by this test run: the namespaces are its own). Returns a description of what it found."""
    found: list[str] = []
    holders = {h.holder_pid for h in net.hosts.values()}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [p for h in net.hosts.values() for p in h.pids() if p != os.getpid()]
        if not pids:
            break
        if sig == signal.SIGTERM:
            for p in pids:
                if p in holders:
                    continue
                try:
                    with open(f"/proc/{p}/cmdline", "rb") as f:
                        cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                    found.append(f"{p}: {cmdline[:160]}")
                except OSError:
                    continue
        for p in pids:
            with contextlib.suppress(OSError):
                os.kill(p, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(h.pids() for h in net.hosts.values()):
            time.sleep(0.05)
    return found


def teardown(net: Network) -> list[str]:
    """Remove everything ``net`` created; returns the processes that had to be killed (if any).

    Every step is attempted even when an earlier one fails. Deleting a namespace deletes the
    links in it (and a veth's peer with it).
    """
    leftovers = _kill_remaining(net)
    for proc in net.holders:
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=_IP_TIMEOUT_S)
    for ns in [*(h.netns for h in net.hosts.values()), net.switch]:
        _ip("netns", "del", ns, check=False)
    net.cut.clear()
    with contextlib.suppress(OSError):
        os.unlink(_owner_path(net.switch))
    return leftovers


def remaining(net: Network) -> list[str]:
    """The namespaces of ``net`` that still exist (none after a clean teardown)."""
    listed = {line.split(" ", 1)[0] for line in _ip("netns", "list", check=False).stdout.splitlines()}
    return [ns for ns in [net.switch, *(h.netns for h in net.hosts.values())] if ns in listed]


@contextlib.contextmanager
def hosts(names: Sequence[str], private_shm: bool = True, attempts: int = 8) -> Iterator[Network]:
    """Create one network namespace per name on a fresh bridge and subnet; remove them on exit.

    ``private_shm``: each host also gets its own /dev/shm (a tmpfs in a mount namespace of its
    own), as separate machines have; without it the hosts share the machine's /dev/shm, and an
    object written into shared memory on one host can be read on another without any transfer.
    """
    if len(set(names)) != len(names) or not 0 < len(names) < 250:
        raise ValueError(f"need 1-249 distinct host names, got {list(names)}")
    net: Network | None = None
    for _ in range(attempts):
        octet = secrets.randbelow(254) + 1
        subnet = f"{SUBNET_PREFIX}.{octet}"
        if subnet in _used_subnets():
            continue
        switch = f"rayredis-net-{subnet}"
        if _ip("netns", "add", switch, check=False).returncode != 0:
            continue  # taken by a parallel run
        net = Network(f"{octet:02x}{secrets.token_hex(1)}", subnet, switch)
        _write_owner(net)
        break
    if net is None:
        raise NetnsError(f"found no free {SUBNET_PREFIX}.X.0/24 subnet in {attempts} attempts")
    try:
        _create(net, names, private_shm)
        yield net
    finally:
        teardown(net)


# ---- partitions -----------------------------------------------------------------------------------


def _EB_DROP_IN(port: str, op: str) -> list[str]:  # noqa: N802 - a rule template
    return ["ebtables", op, "FORWARD", "-p", "IPv4", "-i", port, "-j", "DROP"]


def _eb_rules(port: str, op: str) -> list[list[str]]:
    return [_EB_DROP_IN(port, op), ["ebtables", op, "FORWARD", "-p", "IPv4", "-o", port, "-j", "DROP"]]


def _switch_cmd(net: Network, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", "netns", "exec", net.switch, *args], capture_output=True, text=True,
                         timeout=_IP_TIMEOUT_S)
    if check and res.returncode != 0:
        raise NetnsError(f"`{' '.join(args)}` in {net.switch} failed (exit {res.returncode}): {res.stderr.strip()}")
    return res


def partition(net: Network, name: str) -> None:
    """Cut host ``name`` off: the switch drops every IPv4 frame from and to its bridge port (its own
    loopback traffic is untouched). Idempotent; :func:`heal` undoes it."""
    host = net.hosts[name]
    if name in net.cut:
        return
    net.cut.add(name)  # before the rules, so that heal() removes a half-applied cut too
    for rule in _eb_rules(host.port, "-I"):
        _switch_cmd(net, rule)


def heal(net: Network, name: str) -> None:
    """Undo :func:`partition` for host ``name`` (every rule it added is removed, even if one fails)."""
    if name not in net.cut:
        return
    errors = []
    for rule in _eb_rules(net.hosts[name].port, "-D"):
        res = _switch_cmd(net, rule, check=False)
        if res.returncode != 0 and "does not exist" not in res.stderr and "Bad rule" not in res.stderr:
            errors.append(res.stderr.strip())
    net.cut.discard(name)
    if errors:
        raise NetnsError(f"healing host {name}: {'; '.join(errors)}")


def rules(net: Network) -> str:
    """The switch's ebtables FORWARD rules (empty when nothing is partitioned)."""
    res = _switch_cmd(net, ["ebtables", "-L", "FORWARD"], check=False)
    return "\n".join(line for line in res.stdout.splitlines() if line.startswith("-"))


# ---- threads inside a host -------------------------------------------------------------------------


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET) failed: {os.strerror(err)}")


def enter(host: Host) -> int:
    """Move the calling *thread* into ``host``'s network namespace (other threads stay where they
    are; threads and processes it starts later inherit it). Returns a descriptor of the namespace
    it was in, for :func:`leave`."""
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open(f"/run/netns/{host.netns}", os.O_RDONLY)
    try:
        _setns(fd)
    except BaseException:
        os.close(previous)
        raise
    finally:
        os.close(fd)
    return previous


def leave(previous: int) -> None:
    """Move the calling thread back into the namespace :func:`enter` returned, and close it."""
    try:
        _setns(previous)
    finally:
        os.close(previous)


# ---- runs that died without tearing down -----------------------------------------------------------


def _owner_path(switch: str) -> str:
    return os.path.join(OWNERS_DIR, switch)


def _proc_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _write_owner(net: Network) -> None:
    os.makedirs(OWNERS_DIR, exist_ok=True)
    names = [net.switch, *(h.netns for h in net.hosts.values())]
    tmp = _owner_path(net.switch) + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()} {_proc_start(os.getpid())}\n" + "\n".join(names) + "\n")
    os.replace(tmp, _owner_path(net.switch))


def sweep_stale() -> list[str]:
    """Delete the namespaces of runs whose owner process is gone (it was SIGKILLed before its
    teardown); returns their names. Runs whose owner still lives are never touched."""
    removed: list[str] = []
    try:
        entries = sorted(e for e in os.listdir(OWNERS_DIR) if not e.endswith(".tmp"))
    except OSError:
        return removed
    for entry in entries:
        path = os.path.join(OWNERS_DIR, entry)
        try:
            with open(path) as f:
                lines = f.read().split("\n")
            pid_s, _, start = lines[0].partition(" ")
        except (OSError, IndexError):
            continue
        if pid_s.isdigit() and _proc_start(int(pid_s)) == start:
            continue  # its run is alive
        for ns in [n for n in lines[1:] if n]:
            for pid in _ip("netns", "pids", ns, check=False).stdout.split():
                if pid.isdigit() and int(pid) != os.getpid():  # left over from that run (a /dev/shm holder)
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
            if _ip("netns", "del", ns, check=False).returncode == 0:
                removed.append(ns)
        with contextlib.suppress(OSError):
            os.unlink(path)
    return removed
