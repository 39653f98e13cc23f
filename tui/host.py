"""What a screen may ask of the app it runs in: the daemon link, the settings, and one way of
turning a failure into a message. Screens see the app through this protocol, never by
importing it, so the app can import every screen and no import runs the other way."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from textual.binding import Binding

from forge_api.config import Config, TuiConfig
from forge_api.paths import ForgePaths
from tui.link import DaemonLink


@runtime_checkable
class ForgeHost(Protocol):
    link: DaemonLink
    paths: ForgePaths
    config: Config
    activity: deque[str]
    """Recent activity lines, kept while any screen is shown."""

    @property
    def settings(self) -> TuiConfig: ...

    async def guarded(self, work: Callable[[], Awaitable[Any]], what: str) -> Any:
        """Run `work()`; a failure becomes one notification that says what and why."""

    def report(self, what: str, exc: Exception) -> None:
        """Show a failure as `what: why`."""

    def apply_settings(self) -> None:
        """Theme, motion and keys from `config.tui`, now."""

    def all_bindings(self) -> list[tuple[Binding, str]]:
        """Every key binding with where it applies (the Settings screen lists them)."""
