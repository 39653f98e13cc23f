"""What every screen of the TUI shares: the connection bar, the footer, loading, live reloads.

A screen says what it shows in `body()`, how to fetch it in `load()`, and which event types make
it stale in `RELOAD_ON`; this base runs `load()` in a worker whenever the screen is shown, the
daemon comes back, or a matching event arrives (coalesced, so a burst of events costs one
reload; a screen hidden under another waits, since showing it again reloads it). Every call
goes through `io()`, so a failure becomes one clear message, never a freeze.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer
from textual.worker import Worker

from tui.host import ForgeHost
from tui.messages import DaemonEvent, LinkChanged
from tui.widgets.connection_bar import ConnectionBar
from tui.widgets.dialogs import Confirm

RELOAD_DELAY_S = 0.25


def event_matches(event_type: str, patterns: tuple[str, ...]) -> bool:
    """`job.` matches every job event; `mission.proposed` only itself."""
    return any(event_type.startswith(p) if p.endswith(".") else event_type == p for p in patterns)


class ForgeScreen(Screen[None]):
    """A top-level screen: one of the app's modes, or one pushed over them."""

    RELOAD_ON: ClassVar[tuple[str, ...]] = ()
    _reload_timer: Timer | None = None

    @property
    def forge(self) -> ForgeHost:
        """The app, as far as a screen needs it (see `tui.host`)."""
        assert isinstance(self.app, ForgeHost)
        return self.app

    def compose(self) -> ComposeResult:
        yield ConnectionBar()
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    async def load(self) -> None:
        """Fetch what the screen shows and show it."""

    def cursor_key(self, table_id: str) -> str | None:
        """The key of the row under a table's cursor: the id of what the screen acts on."""
        table = self.query_one(f"#{table_id}", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def confirm(self, question: str, then: Callable[[], object]) -> None:
        """Ask before something that cannot be taken back (cancel, resume, approve, roll back):
        `y` runs `then`, `n` or Escape does nothing. One key, so it stays quick."""

        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(Confirm(f"{question}  (y/n)"), answered)

    async def call(self, method: str, **params: Any) -> Any:
        return await self.forge.link.call(method, **params)

    def io(
        self,
        work: Callable[[], Awaitable[Any]],
        what: str,
        *,
        group: str = "io",
        exclusive: bool = False,
    ) -> Worker[Any]:
        """Run `work()` in a worker of this screen; a failure is shown as `what: why`."""
        return self.run_worker(
            partial(self.forge.guarded, work, what),
            group=group,
            exclusive=exclusive,
            exit_on_error=False,
        )

    def reload(self) -> None:
        self.io(self.load, f"loading {self.title or 'screen'}", group="load", exclusive=True)

    def on_screen_resume(self) -> None:
        self.reload()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        try:
            self.handle_event(message.event)
        except Exception as exc:  # a bad event must not take the app down: say it, go on
            self.forge.report(f"showing a {message.type} event", exc)
        stale = event_matches(message.type, self.RELOAD_ON)
        if stale and self.is_current and self._reload_timer is None:
            self._reload_timer = self.set_timer(RELOAD_DELAY_S, self._timed_reload)

    def _timed_reload(self) -> None:
        self._reload_timer = None
        if self.is_current:
            self.reload()

    def handle_event(self, event: dict[str, Any]) -> None:
        """Apply one event in place (a log line, a progress step); reloads cover the rest."""

    def on_link_changed(self, message: LinkChanged) -> None:
        if message.online:
            self.reload()
