"""Driving the TUI in the tests: Textual's pilot against a real daemon, waiting on what shows.

`run_app` runs one async scenario with the app at 80×24, the size the TUI must work at.
`until` lets the app run until a condition on what it shows holds, or fails naming it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Log

from forge_api.paths import ForgePaths
from tui.app import ForgeApp

Scenario = Callable[[ForgeApp, Pilot[None]], Awaitable[None]]


def run_app(paths: ForgePaths, scenario: Scenario, size: tuple[int, int] = (80, 24)) -> None:
    async def main() -> None:
        app = ForgeApp(paths)
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    asyncio.run(main())


async def until(
    pilot: Pilot[None], what: str, predicate: Callable[[], Any], timeout: float = 60.0
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            shown = "; ".join(notices(pilot.app)) or "none"  # type: ignore[arg-type]
            raise AssertionError(
                f"the TUI never showed {what} within {timeout} s (notifications: {shown})"
            )
        # A plain sleep lets the app run: `pilot.pause` would also wait for every widget of
        # the screen to drain its queue, which a screen streaming a running job's events may
        # not do within Textual's 30 s on a busy machine; what shows is what is asserted.
        await asyncio.sleep(0.1)


def press_closing(app: ForgeApp, key: str) -> None:
    """Press a key that closes the screen it lands on (`enter` in a dialog). `pilot.press` then
    waits for the closing screen's widgets to drain their queues, which a screen being removed
    may never do: under load that was a 30 s `WaitForScreenTimeout`. The key is posted as
    `pilot.press` would post it; wait with `until` for what it leads to."""
    app.simulate_key(key)


def notices(app: ForgeApp) -> list[str]:
    """The messages of the notifications on screen now."""
    return [n.message for n in app._notifications]  # Textual has no public list


async def activity_line(app: ForgeApp, pilot: Pilot[None], what: str, text: str) -> list[str]:
    """Open the dashboard and wait for a line of its recent activity holding `text`; its
    lines then."""
    await pilot.press("1")
    activity = app.screen.query_one("#activity", Log)
    await until(pilot, what, lambda: any(text in line for line in activity.lines))
    return list(activity.lines)
