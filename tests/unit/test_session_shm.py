"""Stopping one session removes only its own shared-memory segments, never another session's."""

from __future__ import annotations

import os
import uuid

from rayredis._private import session


def test_sessions_with_the_same_random_suffix_have_distinct_tags() -> None:
    a = "/tmp/x/session_2026-12-03_10-00-00_100_ab12"
    b = "/tmp/x/session_2026-12-03_10-00-01_200_ab12"  # (the old tag: 4 characters, "ab12", for both)
    assert session.session_shm_tag(a) != session.session_shm_tag(b)
    assert session.session_shm_tag(a) == session.session_shm_tag("/elsewhere/session_2026-12-03_10-00-00_100_ab12/")


def test_remove_session_shm_leaves_other_sessions_segments() -> None:
    mine = f"/tmp/x/session_{uuid.uuid4().hex[:8]}_ab12"
    other = f"/tmp/x/session_{uuid.uuid4().hex[:8]}_ab12"
    paths = [os.path.join(session.SHM_DIR, session.session_shm_tag(d) + "000000_obj") for d in (mine, other)]
    for p in paths:
        with open(p, "wb") as f:
            f.write(b"x")
    try:
        session.remove_session_shm(mine)
        assert not os.path.exists(paths[0]) and os.path.exists(paths[1])
    finally:
        for p in paths:
            if os.path.exists(p):
                os.unlink(p)
