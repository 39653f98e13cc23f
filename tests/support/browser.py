"""A real headless browser (Debian's chromium) driven over the Chrome DevTools protocol, for
what `forge web` shows a person: load a page, wait for a script's answer, press keys, take a
screenshot. The protocol is JSON over a websocket, which aiohttp (textual-serve's) speaks."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp


def chromium_binary() -> str | None:
    """Debian's chromium (`apt-get install chromium`), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Page:
    """One tab, over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call `method`; its result (events that arrive meanwhile are skipped)."""
        call_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self.ws.receive(timeout=60)).data)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        reply = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return reply.get("result", {}).get("value")

    async def wait_for(self, expression: str, what: str, timeout: float = 60) -> Any:
        """Poll `expression` until it is truthy; fail saying `what` was awaited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.2)
        raise AssertionError(f"the browser never showed {what} within {timeout:.0f} s")

    async def press(self, key: str) -> None:
        """One printable key, typed into the focused element."""
        code = f"Key{key.upper()}" if key.isalpha() else f"Digit{key}"
        common = {"key": key, "code": code, "windowsVirtualKeyCode": ord(key.upper())}
        await self.send("Input.dispatchKeyEvent", type="keyDown", text=key, **common)
        await self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@asynccontextmanager
async def headless_page(profile: Path, width: int = 1280, height: int = 800) -> AsyncIterator[Page]:
    """A fresh headless chromium with one blank tab; stopped on exit."""
    binary = chromium_binary()
    assert binary is not None, "no chromium on PATH"
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            f"--window-size={width},{height}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        target = await asyncio.to_thread(_page_target, port)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(target, max_msg_size=0) as ws,
        ):
            yield Page(ws)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _page_target(port: int, timeout: float = 30) -> str:
    """The blank tab's DevTools websocket URL, once the browser answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                url: str = pages[0]["webSocketDebuggerUrl"]
                return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"chromium's DevTools never answered on port {port}")
        time.sleep(0.2)
