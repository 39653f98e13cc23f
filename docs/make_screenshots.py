"""`make screenshots`: the SVG pictures of every TUI screen in the guide, from the real thing.

It starts a daemon in a temporary FORGE_HOME, builds the tiny model, adds the demo repository,
approves the mission the agent proposes and lets it train, evaluate and deploy (to the local
server the tests use, which speaks Ollama's API: no Ollama is needed to make the pictures), asks
the playground a question, and saves each screen at 80×24 with Textual's `save_screenshot`, into
docs/screenshots/; then the dashboard once more, in a headless browser through `forge web`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_api.config import default_config_text
from forge_api.paths import resolve_paths
from forge_cli.demo import make_demo_repo
from forge_cli.main import main as forge
from forge_client.client import Client
from forge_client.launch import spawn_daemon
from tests.support.browser import chromium_binary, free_port, headless_page
from tests.support.ollama_server import FakeOllama
from tui.app import ForgeApp
from tui.messages import OpenJob

OUT = Path(__file__).resolve().parent / "screenshots"
SIZE = (80, 24)


def wait(what: str, predicate: Callable[[], Any], timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.2)
    return value


def prepare(home: Path, ollama_host: str) -> tuple[str, str]:
    """A daemon with a model, a source, an approved and trained mission; (mission, job) ids."""
    paths = resolve_paths({"FORGE_HOME": str(home)})
    paths.ensure()
    paths.config_file.write_text(
        default_config_text()
        .replace('allowed_roots = ["~"]', f'allowed_roots = ["{home}"]')
        .replace("min_commits = 3", "min_commits = 2")
        .replace("min_tokens = 2000", "min_tokens = 20")
        .replace('host = ""', f'host = "{ollama_host}"')
    )
    spawn_daemon(paths)
    with Client(paths.socket_file) as c:
        job = c.call("jobs.submit", kind="prepare-model", params={})
        wait("the tiny model", lambda: c.call("jobs.get", id=job["id"])["status"] == "completed")
        c.call("sources.add", path=str(make_demo_repo(home / "repos" / "demo-project")))
        missions = wait("a mission", lambda: c.call("missions.list")["missions"])
        mission = c.call("missions.approve", id=missions[0]["id"])
        train = mission["data"]["train_job"]
        wait(
            "the mission's deploy",
            lambda: c.call("missions.get", id=mission["id"])["stage"] == "done",
        )
    return mission["id"], train


async def shoot(home: Path, train_job: str) -> None:
    app = ForgeApp(resolve_paths({"FORGE_HOME": str(home)}))
    async with app.run_test(size=SIZE) as pilot:

        async def save(name: str, keys: tuple[str, ...] = (), settle: float = 1.5) -> None:
            if keys:
                await pilot.press(*keys)
            await pilot.pause(settle)
            app.save_screenshot(f"{name}.svg", str(OUT))
            print(f"saved {OUT / name}.svg")

        await pilot.pause(1.0)
        await save("dashboard")
        await save("jobs", ("2",))
        app.post_message(OpenJob(train_job))
        await save("job-detail-log")
        await save("job-detail-chart", ("x",))
        await pilot.press("escape")
        await save("new-job", ("n",))
        await pilot.press("escape")
        await save("missions", ("3",))
        await save("datasets", ("4",))
        await save("sources", ("5",))
        await save("models", ("6",))
        await pilot.press("7")
        await pilot.pause(1.0)
        targets: dict[str, dict[str, str]] = app.screen.targets  # type: ignore[attr-defined]
        adapter = next(k for k, t in targets.items() if t["label"].startswith("adapter"))
        app.screen.query_one("#play-model").value = adapter  # type: ignore[attr-defined]
        prompt = app.screen.query_one("#play-prompt")
        prompt.focus()
        prompt.value = "How do I run the demo app?"  # type: ignore[attr-defined]
        await save("playground", ("enter",), settle=12)
        await save("settings", ("8",))


async def shoot_web(home: Path) -> None:
    """The dashboard as `forge web` shows it in a browser (Debian's chromium), as a PNG."""
    if chromium_binary() is None:
        print("no chromium: docs/screenshots/web.png left as it was", file=sys.stderr)
        return
    server = subprocess.Popen(
        [sys.executable, "-m", "forge_cli", "web", "--port", str(free_port())],
        env=dict(os.environ, FORGE_HOME=str(home)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split(" at ", 1)[1].strip()
        async with headless_page(home / "chromium", 1200, 760) as page:
            await page.send("Page.navigate", url=url)
            await page.wait_for("document.body.classList.contains('-first-byte')", "the TUI")
            await asyncio.sleep(5)
            await page.screenshot(OUT / "web.png")
    finally:
        server.terminate()
        server.wait(20)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="shots", dir="/tmp"))
    OUT.mkdir(exist_ok=True)
    ollama = FakeOllama().start()
    try:
        _, train_job = prepare(home, ollama.host)
        asyncio.run(shoot(home, train_job))
        asyncio.run(shoot_web(home))
    finally:
        os.environ["FORGE_HOME"] = str(home)
        forge(["daemon", "stop"])
        ollama.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
