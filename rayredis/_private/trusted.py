"""Ownership checks on the files rayredis acts on: its temp dir, session dirs, registries and PID records.

On a shared host another local user can create ``/tmp/...`` paths before us. Everything rayredis
reads back to decide what to connect to or which process to signal must therefore be owned by the
user running it and writable by nobody else; anything else is refused with an error naming the fix
(docs/security.md, "Local users").
"""

from __future__ import annotations

import os
import stat

from rayredis.exceptions import RaySystemError

_FIX = ("Remove it if you do not know who made it, or set RAYREDIS_TEMP_DIR to a directory of your own "
        "(created with mode 0700).")


class UntrustedPathError(RaySystemError):
    """A path rayredis would act on is owned by another user, writable by others, or a symlink."""


def check(path: str, what: str, *, missing_ok: bool = True) -> bool:
    """Raise :class:`UntrustedPathError` unless ``path`` (not followed if a symlink) belongs to this
    user and is not writable by group or others. Returns False if it does not exist (``missing_ok``)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        raise UntrustedPathError(f"rayredis refuses the {what} {path}: it is a symbolic link. {_FIX}")
    if st.st_uid != me:
        raise UntrustedPathError(
            f"rayredis refuses the {what} {path}: it belongs to uid {st.st_uid}, not to you (uid {me}), so "
            f"another user may have prepared it. {_FIX}")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedPathError(
            f"rayredis refuses the {what} {path}: its mode {stat.S_IMODE(st.st_mode):04o} lets group or "
            f"others write to it, so another user could change it. Run `chmod go-w {path}` if it is "
            f"yours. {_FIX}")
    return True


def private_dir(path: str, what: str = "directory") -> str:
    """Create ``path`` (and missing parents) with mode 0700 if absent, then :func:`check` it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    check(path, what, missing_ok=False)
    return path
