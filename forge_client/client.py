"""Talking to the daemon: a JSON-RPC 2.0 client over the Unix socket.

Standard library only, so `forge status` starts in a few tens of milliseconds. `Client` is the
blocking one (CLI, tests, scripts); `AsyncClient` is for asyncio programs such as the TUI.
Notifications that arrive while waiting for a reply are kept and handed out by `events()`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from forge_api.protocol import MAX_REPLY_BYTES

if TYPE_CHECKING:  # pydantic is not loaded to start the CLI: only a caller of ask() loads it
    from pydantic import BaseModel

    from forge_api.methods import Method

R = TypeVar("R", bound="BaseModel")

MAX_LINE = MAX_REPLY_BYTES + 1
DEFAULT_TIMEOUT = 60.0
"""Seconds a call waits for its reply (FORGE_TIMEOUT for the CLI); following events waits on."""


class DaemonNotRunning(ConnectionError):
    """Nothing answers on the socket."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the forge daemon is not running (nothing answers on {path}); "
            "start it with `forge daemon`, or `forge service install` to run it as a service"
        )
        self.path = path


class DaemonUnresponsive(ConnectionError):
    """The daemon took the connection but gave no reply: it timed out, stopped mid-call, or
    sent something that is not a reply."""


class RemoteError(Exception):
    """The daemon answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def _result(reply: dict[str, Any]) -> Any:
    if "error" in reply:
        err = reply["error"]
        raise RemoteError(err.get("code", 0), err.get("message", ""), err.get("data"))
    return reply.get("result")


CONNECT_RETRY_S = 5.0
"""How long a client waits for room in the daemon's queue of connections before saying so."""


def connect(path: Path, timeout: float | None) -> socket.socket:
    """A socket connected to the daemon. A full queue of waiting connections (EAGAIN, many
    clients at once) is waited out for a few seconds, then said in one line."""
    deadline = time.monotonic() + CONNECT_RETRY_S
    pause = 0.01
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonNotRunning(path) from exc
        except BlockingIOError:
            sock.close()
            if time.monotonic() >= deadline:
                raise DaemonUnresponsive(
                    f"the daemon is busy: no room in its queue of connections for"
                    f" {CONNECT_RETRY_S:g} s ({path}); try again"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


class Client:
    """A blocking connection to the daemon."""

    def __init__(self, path: Path, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self.sock = connect(path, timeout)
        self.reader = self.sock.makefile("rb")
        self.ids = itertools.count(1)
        self.pending: collections.deque[dict[str, Any]] = collections.deque()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def _read(self) -> dict[str, Any]:
        try:
            line = self.reader.readline(MAX_LINE)
        except TimeoutError:
            raise DaemonUnresponsive(
                f"the daemon took the request but did not answer within {self.timeout:g} s "
                f"(it may be stuck: see its log; FORGE_TIMEOUT sets how long to wait)"
            ) from None
        except OSError as exc:
            raise DaemonUnresponsive(f"the connection to the daemon broke: {exc}") from None
        if not line:
            raise DaemonUnresponsive(
                "the daemon closed the connection before answering (did it stop? see its log, "
                "and `forge status`)"
            )
        try:
            message = json.loads(line)
        except ValueError:
            raise DaemonUnresponsive(
                f"the daemon sent a line that is not JSON ({len(line)} bytes): "
                "is something else listening on its socket?"
            ) from None
        if not isinstance(message, dict):
            raise DaemonUnresponsive("the daemon sent a reply that is not a JSON object")
        return message

    def call(self, method: str, **params: Any) -> Any:
        msg_id = next(self.ids)
        request = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise DaemonUnresponsive(f"the connection to the daemon broke: {exc}") from None
        while True:
            message = self._read()
            if message.get("id") == msg_id and ("result" in message or "error" in message):
                return _result(message)
            if "method" in message:
                self.pending.append(message)

    def ask(self, method: Method[Any, R], **params: Any) -> R:
        """`method` (from `forge_api.methods`), its result as the method's model: the daemon
        validates the params, so its error names the one it refused."""
        return method.reply(self.call(method.name, **params))

    def events(self, *, forever: bool = False) -> Iterator[dict[str, Any]]:
        """The `event` notifications of this connection's subscriptions, as they arrive. Each
        is waited for as long as a reply is, or, with `forever`, as long as it takes (a quiet
        job is not a stuck daemon: `forge jobs logs -f`)."""
        while True:
            if self.pending:
                message = self.pending.popleft()
            else:
                self.sock.settimeout(None if forever else self.timeout)
                message = self._read()
            if message.get("method") == "event":
                yield message["params"]


class AsyncClient:
    """An asyncio connection; a reader task sorts what arrives into replies and events."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.event_queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> AsyncClient:
        try:
            self.reader, self.writer = await asyncio.open_unix_connection(
                str(self.path), limit=MAX_LINE
            )
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise DaemonNotRunning(self.path) from exc
        self._task = asyncio.create_task(self._read_loop())
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            self._task.cancel()

    async def _read_loop(self) -> None:
        assert self.reader is not None
        error: BaseException = ConnectionResetError("the daemon closed the connection")
        try:
            while line := await self.reader.readline():
                message = json.loads(line)
                if message.get("method") == "event":
                    self.event_queue.put_nowait(message["params"])
                elif (future := self.waiting.pop(message.get("id"), None)) and not future.done():
                    future.set_result(message)
        except (ConnectionError, ValueError) as exc:
            error = exc
        finally:
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(error)
            self.waiting.clear()
            self.event_queue.put_nowait(None)

    async def call(self, method: str, **params: Any) -> Any:
        assert self.writer is not None
        msg_id = next(self.ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[msg_id] = future
        request = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
        try:
            self.writer.write(json.dumps(request).encode() + b"\n")
            await self.writer.drain()
            return _result(await future)
        finally:
            # Sent or not, answered or not: nobody waits for it any more (a reply that comes
            # after a failed send would find no one, and its error would go unheard).
            self.waiting.pop(msg_id, None)

    async def ask(self, method: Method[Any, R], **params: Any) -> R:
        """`method` (from `forge_api.methods`), its result as the method's model."""
        return method.reply(await self.call(method.name, **params))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Events until the connection closes."""
        while (event := await self.event_queue.get()) is not None:
            yield event
