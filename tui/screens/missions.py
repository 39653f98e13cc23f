"""Missions the agent proposed: what triggered each, its dataset, plan, ETA and rationale, and
the stage each is in (training, evaluating, failed at a step and why, done, ...).

`a` approves the highlighted mission (its train job starts and the job's screen opens), `e`
approves it with changes to its plan (`steps=50 max_seq_len=768`), `r` rejects it with a
reason, which the agent keeps so the same material is not proposed again, `t` retries a
failed mission from the step that failed, and `x` dismisses a failed (or cancelled) one, which
leaves the list. A new proposal takes the cursor. Its ETA reads `measuring…` while a calibration
measures this machine for it. The list reloads whenever a mission changes.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Markdown

from forge_api.schema import Mission
from forge_client.format import ago, clock, mission_eta
from forge_client.kv import parse_line
from forge_client.record_text import SAMPLES, mission_markdown, stage_text
from tui.messages import OpenJob
from tui.plain import cell
from tui.screens.base import ForgeScreen
from tui.widgets.dialogs import AskText


class MissionsScreen(ForgeScreen):
    TITLE = "Missions"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("mission.",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="mission.approve"),
        Binding("e", "approve_with_changes", "Approve with changes", id="mission.edit"),
        Binding("r", "reject", "Reject", id="mission.reject"),
        Binding("t", "retry", "Retry", id="mission.retry"),
        Binding("x", "dismiss_mission", "Dismiss", id="mission.dismiss"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.missions: dict[str, Mission] = {}
        self.shown: str | None = None
        self.shown_text = ""
        self.newest: str | None = None
        """A mission proposed since the last load: the cursor goes to it, so the keys act on
        what was just proposed rather than on the row highlighted before."""

    def body(self) -> ComposeResult:
        yield DataTable(id="missions", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="mission-detail", classes="panel"):
            yield Markdown("Select a mission to see why it was proposed.", id="mission-md")

    def on_mount(self) -> None:
        table = self.query_one("#missions", DataTable)
        # The title last: at 80 columns it is what is cut, never the ETA.
        table.add_column("stage", key="stage")
        table.add_column("ETA", key="eta")
        table.add_column("proposed", key="proposed")
        table.add_column("title", key="title")
        table.focus()

    async def load(self) -> None:
        listed = (await self.call("missions.list", limit=200))["missions"]
        missions = [Mission.model_validate(m) for m in listed]
        self.missions = {m.id: m for m in missions}
        table = self.query_one("#missions", DataTable)
        current = self.newest or self.cursor_key("missions")
        self.newest = None
        table.clear()
        for m in missions:
            table.add_row(
                stage_text(m),
                mission_eta(m.data.eta_s, m.data.measuring),
                ago(m.created_at),
                cell(m.title),
                key=m.id,
            )
        if current in self.missions:
            table.move_cursor(row=table.get_row_index(current))
        self.shown = None
        await self.show_detail()

    async def show_detail(self) -> None:
        mission_id = self.cursor_key("missions")
        if mission_id is None or mission_id == self.shown:
            return
        mission = self.missions[mission_id]
        samples: list[dict[str, Any]] = []
        dataset_id = mission.data.dataset_id
        if dataset_id:
            preview = await self.call("datasets.preview", id=dataset_id, limit=SAMPLES)
            samples = preview["examples"]
        self.shown = mission_id
        self.post_message(self.DetailReady(mission_markdown(mission, samples)))

    class DetailReady(Message):
        """A mission's detail, fetched by a worker, to be shown by the screen itself."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    async def on_missions_screen_detail_ready(self, message: DetailReady) -> None:
        """Markdown is re-rendered here, in the screen's own message loop, one update after
        another, never in a worker: the next load cancels a worker, and a Markdown update
        cancelled while it mounts its blocks let a CancelledError reach the app's message
        loop, which then stopped for good (the TUI froze, under load, after an approval)."""
        if message.text != self.shown_text:  # re-rendering rebuilds its widgets: only on change
            self.shown_text = message.text
            await self.query_one("#mission-md", Markdown).update(message.text)

    def handle_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "mission.proposed":
            self.newest = str(event["data"]["id"])

    def on_data_table_row_highlighted(self) -> None:
        self.io(lambda: self.show_detail(), "loading the mission", group="detail", exclusive=True)

    def highlighted(self, stage: str, doing: str) -> str | None:
        """The highlighted mission's id if it is at `stage`, else None, saying why nothing is
        done (approving a finished mission used to ask, then be refused)."""
        mission = self.missions.get(self.cursor_key("missions") or "")
        if mission is None:
            return None
        if mission.stage != stage:
            self.notify(
                f"only a {stage} mission can be {doing}: {mission.id} is {stage_text(mission)}",
                severity="warning",
            )
            return None
        return mission.id

    def action_approve(self) -> None:
        mission_id = self.highlighted("proposed", "approved")
        if mission_id:
            self.confirm(
                f"Approve {mission_id}? Its training starts.",
                lambda: self.io(lambda: self._approve(mission_id), f"approving {mission_id}"),
            )

    def action_approve_with_changes(self) -> None:
        mission_id = self.highlighted("proposed", "approved")
        if not mission_id:
            return

        def answered(line: str | None) -> None:
            if not line or not mission_id:
                return
            try:
                changes = parse_line(line)
            except ValueError as exc:
                self.notify(str(exc), severity="error")
                return
            self.io(lambda: self._approve(mission_id, changes), f"approving {mission_id}")

        self.app.push_screen(
            AskText(
                f"Approve {mission_id} with these changes to its plan:",
                "steps=50 max_seq_len=768 rank=8 base_model=… max_minutes=20",
            ),
            answered,
        )

    def action_retry(self) -> None:
        mission_id = self.highlighted("failed", "retried")
        if mission_id:
            self.io(lambda: self._retry(mission_id), f"retrying {mission_id}")

    def action_dismiss_mission(self) -> None:
        mission_id = self.highlighted("failed", "dismissed")
        if mission_id:
            self.io(lambda: self._dismiss(mission_id), f"dismissing {mission_id}")

    async def _dismiss(self, mission_id: str) -> None:
        await self.call("missions.dismiss", id=mission_id)
        self.notify(f"dismissed {mission_id}: `forge missions ls --stage dismissed` lists it")

    async def _retry(self, mission_id: str) -> None:
        mission = Mission.model_validate(await self.call("missions.retry", id=mission_id))
        self.notify(f"retrying {mission_id}: {stage_text(mission)}")

    async def _approve(self, mission_id: str, changes: dict[str, Any] | None = None) -> None:
        approved = await self.call("missions.approve", id=mission_id, set=changes or {})
        data = Mission.model_validate(approved).data
        job = data.train_job
        held = data.held_until
        note = f"; held for quiet hours until {clock(held)}" if held else ""
        self.notify(f"approved {mission_id}: train job {job} queued{note}")
        if job:
            self.post_message(OpenJob(job))

    def action_reject(self) -> None:
        mission_id = self.highlighted("proposed", "rejected")
        if not mission_id:
            return

        def rejected(reason: str | None) -> None:
            if reason and mission_id:
                self.io(lambda: self._reject(mission_id, reason), f"rejecting {mission_id}")

        self.app.push_screen(
            AskText(f"Why reject {mission_id}?", "the agent remembers it"), rejected
        )

    async def _reject(self, mission_id: str, reason: str) -> None:
        await self.call("missions.reject", id=mission_id, reason=reason)
        self.notify(f"rejected {mission_id}")

    def on_data_table_row_selected(self) -> None:
        """Enter on an approved mission opens its train job."""
        mission_id = self.cursor_key("missions")
        mission = self.missions.get(mission_id or "")
        if mission is not None and (job := mission.data.train_job):
            self.post_message(OpenJob(job))
