"""Sources: the git repositories the agent watches, what it has seen, and what is new."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from forge_client.format import ago
from tui.plain import cell, lines
from tui.screens.base import ForgeScreen
from tui.widgets.dialogs import AskText, Confirm


def pending_text(pending: dict[str, Any] | None) -> str:
    if not pending:
        return "not scanned yet"
    if pending.get("error"):  # git cannot read it (e.g. another user's repository)
        return str(pending["error"])
    enough = "enough for a mission" if pending.get("enough") else "below the thresholds"
    return (
        f"{pending.get('commits', 0)} commits, {pending.get('approx_tokens', 0)} tokens: {enough}"
    )


class SourcesScreen(ForgeScreen):
    TITLE = "Sources"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("source.", "mission.proposed")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_source", "Add", id="sources.add"),
        Binding("d", "remove_source", "Remove", id="sources.remove"),
        Binding("s", "scan_source", "Scan now", id="sources.scan"),
    ]

    def body(self) -> ComposeResult:
        yield DataTable(id="sources", cursor_type="row", zebra_stripes=True)
        yield Static("", id="source-detail", classes="panel")

    def on_mount(self) -> None:
        table = self.query_one("#sources", DataTable)
        table.add_columns("id", "name", "head", "trained", "new material")
        table.focus()

    async def load(self) -> None:
        sources = (await self.call("sources.list"))["sources"]
        table = self.query_one("#sources", DataTable)
        table.clear()
        for s in sources:
            table.add_row(
                s["id"],
                cell(s["name"]),
                (s.get("last_commit") or "-")[:10],
                (s.get("trained_commit") or "never")[:10],
                pending_text(s.get("pending")),
                key=s["id"],
            )
        detail = self.query_one("#source-detail", Static)
        if not sources:
            detail.update("No sources yet: press [b]a[/b] and give the path of a git repository.")
        else:
            detail.update(
                lines([f"{s['id']}: {s['path']} (added {ago(s['added_at'])})" for s in sources])
            )

    def action_add_source(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.io(lambda: self._add(path), f"adding {path}")

        self.app.push_screen(AskText("Watch which git repository?", "/path/to/repo"), chosen)

    async def _add(self, path: str) -> None:
        source = await self.call("sources.add", path=path)
        self.notify(f"watching {source['name']} ({source['id']})")

    def action_remove_source(self) -> None:
        source_id = self.cursor_key("sources")
        if not source_id:
            return

        def answered(yes: bool | None) -> None:
            if yes and source_id:
                self.io(lambda: self.call("sources.remove", id=source_id), f"removing {source_id}")

        self.app.push_screen(Confirm(f"Stop watching {source_id}? Its datasets stay."), answered)

    def action_scan_source(self) -> None:
        source_id = self.cursor_key("sources")
        if source_id:
            self.io(lambda: self._scan(source_id), f"scanning {source_id}")

    async def _scan(self, source_id: str) -> None:
        result = await self.call("sources.scan", id=source_id)
        mission = result.get("mission")
        self.notify(f"proposed: {mission['title']}" if mission else "nothing new enough to propose")
        self.reload()
