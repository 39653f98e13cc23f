"""Who is on the other end of a Unix socket: SO_PEERCRED on Linux, LOCAL_PEERCRED on macOS/BSD."""

from __future__ import annotations

import socket
import struct
import sys


def peer_uid(sock: socket.socket) -> int | None:
    """The connecting process's uid, or None where the platform cannot tell."""
    if sys.platform.startswith("linux"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return int(uid)
    if sys.platform == "darwin" or "bsd" in sys.platform:
        # getpeereid(3) is LOCAL_PEERCRED on SOL_LOCAL (0): struct xucred {u_int version;
        # uid_t uid; short ngroups; gid_t groups[16];}.
        local_peercred = getattr(socket, "LOCAL_PEERCRED", 0x001)
        raw = sock.getsockopt(0, local_peercred, struct.calcsize("IIh16I"))
        _version, uid = struct.unpack_from("II", raw)
        return int(uid)
    return None
