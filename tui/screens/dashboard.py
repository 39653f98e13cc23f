"""The dashboard: the machine, the running job (progress, loss, ETA), missions waiting, activity."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Log, ProgressBar, Sparkline, Static

from forge_api.schema import Mission
from forge_client.format import ago, describe_event, duration, mission_eta, progress_text, size
from tui.messages import NewJob, OpenJob
from tui.plain import cell, shown
from tui.screens.base import ForgeScreen

ACTIVITY_LINES = 200
REFRESH_S = 30.0


class DashboardScreen(ForgeScreen):
    TITLE = "Dashboard"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("job.status", "mission.")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "open_running", "Open running job", id="dashboard.open_job")
    ]

    running_id: str | None = None

    def body(self) -> ComposeResult:
        with Horizontal(id="dash-top"):
            yield Static(id="machine", classes="panel")
            with Vertical(id="running", classes="panel"):
                yield Static("nothing running", id="running-name")
                yield ProgressBar(id="running-bar", show_eta=False)
                yield Static("", id="running-progress")
                yield Sparkline([], id="running-loss")
        with Horizontal(id="dash-bottom"):
            yield DataTable(id="waiting", classes="panel", cursor_type="row")
            yield Log(id="activity", classes="panel", max_lines=ACTIVITY_LINES)
        with Horizontal(id="quick"):
            yield Button("New job (n)", id="quick-new", compact=True)
            yield Button("Missions (3)", id="quick-missions", compact=True)
            yield Button("Playground (7)", id="quick-play", compact=True)

    def on_mount(self) -> None:
        self.query_one("#machine").border_title = "Machine"
        self.query_one("#running").border_title = "Running"
        waiting = self.query_one("#waiting", DataTable)
        waiting.border_title = "Missions waiting · press 3"
        waiting.add_columns("mission", "proposed", "ETA")
        # "5 min ago" must not read "12 s ago" for ever: shown again every half minute.
        self.set_interval(REFRESH_S, self._refresh)
        self.query_one("#activity").border_title = "Recent activity"

    async def load(self) -> None:
        status = await self.call("system.status")
        proposed = (await self.call("missions.list", stage=["proposed"]))["missions"]
        self._show_machine(status)
        running = status["running"][0] if status["running"] else None
        await self._show_running(running)
        waiting = self.query_one("#waiting", DataTable)
        waiting.clear()
        for m in proposed:
            mission = Mission.model_validate(m)
            waiting.add_row(
                cell(mission.title),
                ago(mission.created_at),
                mission_eta(mission.data.eta_s, mission.data.measuring),
            )
        if not self.forge.activity:  # the TUI just started: what happened last, as events say
            self.forge.activity.extend(await self._recent())
        # Everything the app heard, while this screen was shown or not.
        activity = self.query_one("#activity", Log)
        activity.clear()
        activity.write_lines(self.forge.activity)

    async def _recent(self) -> list[str]:
        """The last jobs and missions, oldest first, as the events they sent would read."""
        events: list[dict[str, Any]] = []
        for job in (await self.call("jobs.list", limit=8))["jobs"]:
            when = job["finished_at"] or job["started_at"] or job["created_at"]
            data = {"status": job["status"], "error": job.get("error")}
            events.append({"type": "job.status", "job_id": job["id"], "ts": when, "data": data})
        for m in (await self.call("missions.list", limit=8))["missions"]:
            mission = Mission.model_validate(m)
            data = {"id": mission.id, "title": mission.title, "stage": mission.stage}
            events.append({"type": "mission.proposed", "ts": mission.created_at, "data": data})
            if mission.stage != "proposed" and mission.decided_at:
                events.append({"type": "mission.stage", "ts": mission.decided_at, "data": data})
        events.sort(key=lambda e: e["ts"])
        return [line for e in events if (line := describe_event(e))][-ACTIVITY_LINES:]

    def _show_machine(self, status: dict[str, Any]) -> None:
        acc = status["accelerator"]
        total, free = status["memory_total_bytes"], status["memory_available_bytes"]
        queue = status["queue"]
        lines = [
            f"{acc['kind'].upper()} · {acc['name']}",
            f"memory {size(total - free) if total and free else '-'} used of {size(total)}",
            f"queue {queue['queued']} waiting, {queue['running']} running (max "
            f"{queue['max_parallel']})",
            f"daemon {status['version']}, up {duration(status['uptime_s'])}",
        ]
        self.query_one("#machine", Static).update("\n".join(lines))

    async def _show_running(self, job: dict[str, Any] | None) -> None:
        name = self.query_one("#running-name", Static)
        bar = self.query_one("#running-bar", ProgressBar)
        spark = self.query_one("#running-loss", Sparkline)
        if job is None:
            self.running_id = None
            name.update("nothing running; press n to start a job")
            bar.display = False
            self.query_one("#running-progress", Static).update("")
            spark.data = []
            return
        if job["id"] != self.running_id:
            self.running_id = job["id"]
            metrics = await self.call("jobs.metrics", id=job["id"], names=["loss"])
            spark.data = [m["value"] for m in metrics["metrics"]]
        name.update(shown("[b]$name[/b]  $id (o opens it)", name=job["name"], id=job["id"]))
        bar.display = True
        self._show_progress(job.get("progress"))

    def _show_progress(self, progress: dict[str, Any] | None) -> None:
        bar = self.query_one("#running-bar", ProgressBar)
        if progress and progress.get("total"):
            bar.update(total=progress["total"], progress=progress.get("step") or 0)
        self.query_one("#running-progress", Static).update(progress_text(progress))

    def handle_event(self, event: dict[str, Any]) -> None:
        if line := describe_event(event):  # the app keeps it too, for when this is hidden
            self.query_one("#activity", Log).write_line(line)
        if event.get("job_id") != self.running_id or self.running_id is None:
            return
        if event["type"] == "job.progress":
            self._show_progress(event["data"])
        elif event["type"] == "job.metric" and "loss" in event["data"].get("values", {}):
            spark = self.query_one("#running-loss", Sparkline)
            spark.data = [*(spark.data or []), event["data"]["values"]["loss"]]

    def _refresh(self) -> None:
        if self.is_current:
            self.reload()

    def action_open_running(self) -> None:
        if self.running_id:
            self.post_message(OpenJob(self.running_id))

    def on_data_table_row_selected(self) -> None:
        self.app.switch_mode("missions")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "quick-new":
            self.post_message(NewJob())
        elif event.button.id == "quick-missions":
            self.app.switch_mode("missions")
        elif event.button.id == "quick-play":
            self.app.switch_mode("playground")
