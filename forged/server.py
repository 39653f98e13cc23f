"""The daemon's socket: a Unix stream socket speaking JSON-RPC 2.0, one JSON object per line.

It owns what is about the socket and not about any method: the 0700 folder and 0600 socket,
the single-instance lock, the stale-socket probe, the peer-uid check, the 1 MiB line cap and
the cap on unfinished lines in all, and one `Connection` per client with a write lock shared by
replies and event notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from forge_api.paths import MAX_SOCKET_PATH
from forge_api.protocol import INVALID_REQUEST, MAX_MESSAGE_BYTES
from forged.peercred import peer_uid
from forged.rpc import RpcError, encode, error_reply

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Unfinished lines all clients together may make the daemon hold (each up to its own 1 MiB)."""

BACKLOG = 4096
"""Connections the kernel queues while the daemon is busy (it caps this at net.core.somaxconn):
asyncio's 100 refused most of 500 clients connecting at once."""


class AlreadyRunning(RuntimeError):
    """Another daemon holds this socket."""


class Connection:
    """One client; replies and notifications go out through `send`, one whole line at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.lock = asyncio.Lock()
        self.subscriptions: set[int] = set()
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        """The task serving this client (asyncio's, for the server's callback)."""
        self.pending = 0
        """Bytes of an unfinished line held for this client."""
        # Run once the current reply is written (a subscription starts streaming after it).
        self.after_reply: list[Callable[[], None]] = []

    async def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("connection closed")
        async with self.lock:
            self.writer.write(data)
            await self.writer.drain()

    def abort(self) -> None:
        """Close at once, without waiting for buffered output (a subscriber that fell behind)."""
        self.closed = True
        self.writer.transport.abort()


def acquire_lock(lock_path: Path) -> IO[str]:
    """An exclusive lock for this daemon's lifetime; a second daemon finds it held and stops."""
    handle = open(lock_path, "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise AlreadyRunning(
                f"another forged is already running for {lock_path.parent} "
                f"(it holds {lock_path}); stop it with `forge daemon stop` first"
            ) from exc
        raise
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead daemon; refuse if something still answers on it."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale socket %s", path)
        path.unlink(missing_ok=True)
        return
    except OSError as exc:
        if exc.errno in (errno.ENOTSOCK, errno.ECONNREFUSED):
            path.unlink(missing_ok=True)
            return
        raise
    finally:
        probe.close()
    raise AlreadyRunning(f"a daemon is already listening on {path}; not starting a second one")


class RpcServer:
    """Accepts connections and hands each line to `on_line`, writing back what it returns."""

    def __init__(
        self,
        path: Path,
        on_line: Callable[[bytes, Connection], Any],
        on_close: Callable[[Connection], None],
    ) -> None:
        self.path = path
        self.on_line = on_line
        self.on_close = on_close
        self.uid = os.getuid()
        self.connections: set[Connection] = set()
        self.pending_total = 0
        """Bytes of unfinished lines held for all connections together."""
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise OSError(
                f"socket path {self.path} is longer than a Unix socket allows "
                f"({MAX_SOCKET_PATH} bytes); "
                "set FORGE_HOME or FORGE_SOCKET to a shorter path"
            )
        clear_stale_socket(self.path)
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=READ_CHUNK, backlog=BACKLOG
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 0.1)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def close_all(self, timeout: float = 2.0) -> None:
        """Drop every client and wait for their tasks to end: a client task still waiting on
        its socket when the loop closes is cancelled there, and Python 3.11's stream server
        logs each such cancellation as an error (four tracebacks for one TUI)."""
        tasks = [conn.task for conn in self.connections if conn.task is not None]
        for conn in list(self.connections):
            conn.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        conn.task = asyncio.current_task()
        sock = writer.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and uid != self.uid:
            log.warning("refused a connection from uid %s", uid)
            with contextlib.suppress(Exception):
                writer.write(
                    encode(
                        error_reply(
                            None, RpcError(INVALID_REQUEST, "forbidden: not the daemon's user")
                        )
                    )
                )
                await writer.drain()
            writer.close()
            return
        self.connections.add(conn)
        try:
            await self._read_lines(conn)
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            conn.closed = True
            self._hold(conn, 0)
            self.connections.discard(conn)
            self.on_close(conn)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_lines(self, conn: Connection) -> None:
        """Cut what the client sends into lines and answer each. An unfinished line is held
        here, counted against both its own cap (MAX_MESSAGE_BYTES) and the cap on what all
        connections together may hold (MAX_PENDING_BYTES), so slow or hostile clients cannot
        make the daemon hold unbounded memory."""
        buffer = bytearray()
        scanned = 0
        while not conn.closed:
            chunk = await conn.reader.read(READ_CHUNK)
            if not chunk:
                if buffer.strip():
                    await self._reply(conn, bytes(buffer))
                return
            buffer += chunk
            while (end := buffer.find(b"\n", scanned)) >= 0:
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                scanned = 0
                self._hold(conn, len(buffer))
                if line.strip():
                    await self._reply(conn, line)
            scanned = len(buffer)
            self._hold(conn, len(buffer))
            if len(buffer) > MAX_MESSAGE_BYTES:
                await self._refuse(
                    conn,
                    f"message too large: the limit is {MAX_MESSAGE_BYTES} bytes per line; "
                    "closing the connection",
                )
                return
            if self.pending_total > MAX_PENDING_BYTES:
                log.warning(
                    "closing a connection: unfinished lines hold %d bytes in all",
                    self.pending_total,
                )
                await self._refuse(
                    conn,
                    f"the daemon holds {self.pending_total // 2**20} MiB of unfinished "
                    f"messages from its clients, over its {MAX_PENDING_BYTES // 2**20} MiB cap: "
                    "send each message as one whole line; closing the connection",
                )
                return

    def _hold(self, conn: Connection, size: int) -> None:
        """Record that `conn` now holds `size` bytes of an unfinished line."""
        self.pending_total += size - conn.pending
        conn.pending = size

    async def _refuse(self, conn: Connection, message: str) -> None:
        self._hold(conn, 0)
        await conn.send(encode(error_reply(None, RpcError(INVALID_REQUEST, message))))

    async def _reply(self, conn: Connection, line: bytes) -> None:
        reply = await self.on_line(line, conn)
        if reply is not None:
            await conn.send(reply)
        callbacks, conn.after_reply = conn.after_reply, []
        for callback in callbacks:
            callback()
