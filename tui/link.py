"""The TUI's line to the daemon: calls, and the event stream that survives daemon restarts.

Two connections: one for calls, opened on demand, and one subscribed to every event. When the
daemon goes away the subscriber waits and retries; when it is back it subscribes with
`since=<last seq seen>`, so the events the daemon stored meanwhile (a job recovered, a mission
expired) arrive in order and none twice. Plain asyncio with no Textual in it, so it can be
driven and tested on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_client.client import AsyncClient, DaemonNotRunning

RETRY_MIN_S = 0.2
RETRY_MAX_S = 2.0


class DaemonLink:
    """Calls to the daemon, and a subscription that reconnects without losing its place."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.last_seq: int | None = None
        self.online: bool | None = None
        self._calls: AsyncClient | None = None
        self._connecting = asyncio.Lock()

    async def call(self, method: str, **params: Any) -> Any:
        """One request; raises DaemonNotRunning when nothing answers, RemoteError on an error."""
        client = await self._call_client()
        try:
            return await client.call(method, **params)
        except (ConnectionError, OSError) as exc:
            self._calls = None
            await client.close()
            raise DaemonNotRunning(self.socket) from exc

    async def _call_client(self) -> AsyncClient:
        async with self._connecting:
            if self._calls is None:
                self._calls = await AsyncClient(self.socket).connect()
            return self._calls

    async def follow(
        self,
        on_event: Callable[[dict[str, Any]], None],
        on_state: Callable[[bool], None],
    ) -> None:
        """Deliver every event to `on_event` until cancelled; `on_state` hears online/offline."""
        delay = RETRY_MIN_S
        while True:
            try:
                client = await AsyncClient(self.socket).connect()
            except (DaemonNotRunning, OSError):
                self._set_state(False, on_state)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            try:
                reply = await client.call("events.subscribe", since=self.last_seq)
                if self.last_seq is None or reply["last_seq"] < self.last_seq:
                    # First contact, or a daemon with another store: start from its present.
                    self.last_seq = reply["last_seq"]
                self._set_state(True, on_state)
                delay = RETRY_MIN_S
                async for event in client.events():
                    if event["seq"] <= self.last_seq:
                        continue
                    self.last_seq = event["seq"]
                    on_event(event)
            except (ConnectionError, OSError):
                pass
            finally:
                await client.close()
            self._set_state(False, on_state)
            await self._drop_calls()

    def _set_state(self, online: bool, on_state: Callable[[bool], None]) -> None:
        if self.online != online:
            self.online = online
            on_state(online)

    async def _drop_calls(self) -> None:
        if self._calls is not None:
            with contextlib.suppress(Exception):
                await self._calls.close()
            self._calls = None

    async def close(self) -> None:
        await self._drop_calls()
