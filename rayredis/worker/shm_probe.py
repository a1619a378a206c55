"""A driver's probe, at connection, of whether it shares /dev/shm with its raylet (which reads it back)."""

from __future__ import annotations

import os
from dataclasses import dataclass

SHM_DIR = "/dev/shm"
#: The values of ``Config.objects_over_connection``.
MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class Probe:
    """What ``Register`` carries: ``data`` asks the raylet to read it back from ``shm_dir/name``
    (``name`` is empty when nothing was written); no ``data``, shared memory without asking."""

    name: str = ""
    data: bytes = b""
    shm_dir: str = SHM_DIR

    def remove(self) -> None:
        """Delete the probe segment (once the raylet has answered, or the connection failed)."""
        if self.name:
            try:
                os.unlink(os.path.join(self.shm_dir, self.name))
            except OSError:
                pass


def create(mode: str, shm_dir: str = SHM_DIR) -> Probe:
    """The probe for ``Config.objects_over_connection == mode``: ``"auto"`` writes a segment with
    random content (none if ``shm_dir`` is missing or not writable, so objects go over the
    connection), ``"always"`` asks without writing one, ``"never"`` does not ask."""
    if mode not in MODES:
        raise ValueError(f"RAYREDIS_OBJECTS_OVER_CONNECTION={mode!r} is not one of {', '.join(MODES)}; "
                         "unset it (the default, auto, probes /dev/shm at connection).")
    if mode == "never":
        return Probe()
    data = os.urandom(16)
    if mode == "always":
        return Probe(data=data, shm_dir=shm_dir)
    name = f"rayredis_probe_{os.getpid()}_{os.urandom(8).hex()}"
    path = os.path.join(shm_dir, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return Probe(data=data, shm_dir=shm_dir)
    try:
        written = os.write(fd, data)
    except OSError:
        written = 0
    finally:
        os.close(fd)
    probe = Probe(name, data, shm_dir)
    if written != len(data):
        probe.remove()
        return Probe(data=data, shm_dir=shm_dir)
    return probe
