"""Per-message size caps shared by every transport (gRPC channels and servers, the raylet's Unix socket)."""

from __future__ import annotations

#: The largest message any rayredis process sends or accepts: gRPC's max send/receive length on
#: every channel and server, and the largest frame on the raylet's Unix socket.
MAX_MESSAGE_BYTES = 512 * 1024 * 1024

#: Room kept in a message for what travels around an object's bytes (IDs, sizes, contained refs
#: and the batch around them).
MESSAGE_HEADROOM_BYTES = 1024 * 1024

#: The largest object that travels inside one message, for clients that cannot map the raylet's
#: /dev/shm (``RegisterReply.objects_over_connection``).
MAX_OBJECT_OVER_CONNECTION = MAX_MESSAGE_BYTES - MESSAGE_HEADROOM_BYTES


def too_large_message(what: str, size: int) -> str:
    """Why ``what`` (an object of ``size`` bytes) cannot travel over the connection, and the fix."""
    return (
        f"{what} is {size} bytes, too large to travel over the connection to the raylet: this driver "
        f"does not share /dev/shm with its raylet, so objects are sent inside messages, and one "
        f"message holds at most {MAX_OBJECT_OVER_CONNECTION} bytes of object data (messages are "
        f"capped at {MAX_MESSAGE_BYTES} bytes). Run the driver on a node of the cluster (same host and "
        f"/dev/shm as a raylet), or split the object into smaller ones."
    )
