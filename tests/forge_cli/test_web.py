"""`forge web`: the TUI in a real headless browser (Debian's chromium), driving a real daemon,
and the token that keeps everyone else out."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.browser import chromium_binary, free_port, headless_page
from tests.support.daemon_harness import Daemon, DaemonFactory
from tests.support.fake_engine import fake_engine


@contextmanager
def forge_web(daemon: Daemon) -> Iterator[str]:
    """`forge web` on a free port for `daemon`'s home; the URL it printed, token and all."""
    with serve_web(daemon.env) as url:
        yield url


@contextmanager
def serve_web(env: dict[str, str], cwd: Path | None = None) -> Iterator[str]:
    """`forge web` on a free port, run with `env` (in `cwd`); the URL it printed."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "forge_cli", "web", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("forge web: the TUI at "), first
        url = first.split(" at ", 1)[1].strip()
        assert url.startswith(f"http://127.0.0.1:{port}/?token=")
        yield url
    finally:
        process.terminate()
        process.wait(20)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=20) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def test_every_request_needs_the_token(daemon: Daemon) -> None:
    with forge_web(daemon) as url:
        base, token = url.split("/?token=")
        status, _, body = get(base + "/")
        assert status == 403 and "open the URL with its token" in body
        assert get(base + "/?token=not-it")[0] == 403
        assert get(base + "/static/js/textual.js")[0] == 403
        assert get(base + "/ws")[0] == 403

        status, headers, _ = get(url)
        assert status == 302 and headers["Location"] == "/"  # the token leaves the address bar
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        session = cookie.split("forge_web=", 1)[1].split(";", 1)[0]
        assert session and session != token  # the cookie is a session, not the token
        jar = {"Cookie": f"forge_web={session}"}
        status, _, page = get(base + "/", jar)
        assert status == 200 and "AI Forge" in page
        # The link is spent: a second visit with it opens nothing, nor does the token as a cookie.
        status, _, body = get(url)
        assert status == 403 and "this link was used already" in body
        assert get(base + "/", {"Cookie": f"forge_web={token}"})[0] == 403
        # A page on another local port cannot reach it, cookie or not, token or not.
        other = {**jar, "Origin": "http://127.0.0.1:1", "Upgrade": "websocket"}
        status, _, body = get(base + "/ws", other)
        assert status == 403 and "a request from http://127.0.0.1:1 refused" in body
        status, _, body = get(f"{base}/ws?token={token}", other)
        assert status == 403 and "refused" in body
        assert get(base + "/", {**jar, "Origin": "http://evil.example"})[0] == 403
        # A name that resolves here (DNS rebinding) still names another host: refused.
        status, _, body = get(base + "/", {**jar, "Host": "evil.example:80"})
        assert status == 403 and "requests for 'evil.example:80' refused" in body


@pytest.mark.skipif(
    chromium_binary() is None,
    reason="Debian's chromium is not installed (`apt-get install chromium`); `make test` installs"
    " it where it runs as root",
)
def test_the_tui_in_a_browser_cancels_a_job(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    daemon = make_daemon(
        config=fake_engine(tmp_path, "import time\ntime.sleep(300)\nemit(type='done')")
    ).start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"name": "long-one"})
    daemon.wait_job(job["id"], {"running"}, 60)

    async def scenario(url: str) -> None:
        async with headless_page(tmp_path / "chromium") as page:
            await page.send("Page.enable")
            await page.send("Page.navigate", url=url)
            await page.wait_for(
                "document.body && document.body.classList.contains('-first-byte')",
                "the TUI's first screen",
            )
            await page.evaluate("document.querySelector('.xterm-helper-textarea').focus()")
            await asyncio.sleep(3)  # the TUI connects to the daemon and lists its jobs
            await page.press("2")
            await asyncio.sleep(2)
            await page.screenshot(tmp_path / "jobs.png")
            for _ in range(5):  # keys typed while a screen mounts may be lost: try again
                await page.press("c")
                await asyncio.sleep(1)
                await page.press("y")
                await asyncio.sleep(2)
                if daemon.call("jobs.get", id=job["id"])["status"] == "cancelled":
                    break
            await page.press("q")
            await page.wait_for(
                "document.body.classList.contains('-closed')", "'Session ended' after q"
            )

    with forge_web(daemon) as url:
        asyncio.run(scenario(url))
    assert daemon.call("jobs.get", id=job["id"])["status"] == "cancelled"
    assert (tmp_path / "jobs.png").stat().st_size > 10_000
