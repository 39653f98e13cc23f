"""One job: its state and progress, the loss chart, metrics, parameters, and the live log.

The log opens on its last `TAIL` lines and follows new ones as they are pushed; `g` reloads it
from the first line, `f` stops or resumes following. Lines arrive as `job.log` events; any
line with a seq already shown is skipped, so a reload racing the stream never doubles a line.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, ProgressBar, Static, TabbedContent, TabPane

from forge_api.names import TERMINAL_JOB_STATUSES
from forge_client.format import (
    clock,
    metric,
    params_lines,
    placement_text,
    progress_text,
    status_style,
)
from tui.screens.base import ForgeScreen
from tui.widgets.log_view import MAX_LINES, LogView
from tui.widgets.loss_chart import SERIES, LossChart

TAIL = 500
TABS = Binding.Group("tabs", compact=True)
PUSHED_KEPT = 2000


class JobDetailScreen(ForgeScreen):
    TITLE = "Job"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ()
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="job.back"),
        Binding("c", "cancel_job", "Cancel", id="job.cancel"),
        Binding("r", "resume_job", "Resume", id="job.resume"),
        Binding("f", "toggle_follow", "Follow", id="job.follow"),
        Binding("g", "from_start", "Top", id="job.from_start"),
        Binding("l", "tab('log')", "Log", id="job.tab_log", group=TABS),
        Binding("x", "tab('chart')", "Chart", id="job.tab_chart", group=TABS),
        Binding("m", "tab('metrics')", "Metrics", id="job.tab_metrics", group=TABS),
        Binding("p", "tab('params')", "Params", id="job.tab_params", group=TABS),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.job: dict[str, Any] = {}
        self.last_log_seq = 0
        self.pushed: deque[tuple[int, str]] = deque(maxlen=PUSHED_KEPT)

    def body(self) -> ComposeResult:
        yield Static(id="job-head")
        with Horizontal(id="job-progress-row"):
            yield ProgressBar(id="job-bar", show_eta=False)
            yield Static("", id="job-progress")
        with TabbedContent(initial="log", id="job-tabs"):
            with TabPane("Log", id="log"):
                yield LogView(id="job-log")
            with TabPane("Chart", id="chart"):
                yield LossChart(id="job-chart")
            with TabPane("Metrics", id="metrics"):
                yield DataTable(id="job-metrics", cursor_type="row")
            with TabPane("Params", id="params"):
                yield Static(id="job-params")

    def on_mount(self) -> None:
        table = self.query_one("#job-metrics", DataTable)
        for column in ("metric", "latest", "step"):
            table.add_column(column, key=column)
        self.query_one("#job-log", LogView).focus()

    async def load(self) -> None:
        self.job = await self.call("jobs.get", id=self.job_id)
        self.job_id = self.job["id"]
        self._show_job()
        metrics = (await self.call("jobs.metrics", id=self.job_id))["metrics"]
        chart = self.query_one("#job-chart", LossChart)
        chart.reset()
        for m in metrics:
            self._take_metric(m["name"], m["step"], m["value"])
        chart.redraw()
        logs = await self.call("jobs.logs", id=self.job_id, tail=TAIL)
        self._show_log(logs)

    def _show_log(self, logs: dict[str, Any]) -> None:
        """The lines fetched, then any pushed meanwhile: the two connections race."""
        log = self.query_one("#job-log", LogView)
        log.replace([line["line"] for line in logs["lines"]])
        self.last_log_seq = logs["last_seq"]
        for seq, line in self.pushed:
            if seq > self.last_log_seq:
                log.add(line)
                self.last_log_seq = seq

    def _show_job(self) -> None:
        job = self.job
        self.title = f"Job {job['id']}"
        status = job["status"]
        colour = status_style(status)
        head = [
            f"[b]{job['name']}[/b]  {job['id']}  {job['kind']}  "
            f"[{colour}]{status}[/{colour}]  attempt {job['attempt']}  "
            f"created {clock(job['created_at'])}"
            + (f", started {clock(job['started_at'])}" if job.get("started_at") else "")
            + (f", ended {clock(job['finished_at'])}" if job.get("finished_at") else "")
        ]
        if job.get("error"):
            head.append(f"[red]{job['error']}[/red]")
        if job.get("mission_id"):
            head.append(f"mission {job['mission_id']}")
        if where := placement_text(job.get("placement")):
            head.append(f"runs as {escape(where)}")
        self.query_one("#job-head", Static).update("\n".join(head))
        self._show_progress(job.get("progress"))
        params = "\n".join(params_lines(job["params"], job.get("summary")))
        self.query_one("#job-params", Static).update(
            Text(
                f"{params}\n\nrun folder: {job['run_dir']}\n"
                f"checkpoint: {job.get('checkpoint') or '-'}"
            )
        )
        self.refresh_bindings()

    def _show_progress(self, progress: dict[str, Any] | None) -> None:
        bar = self.query_one("#job-bar", ProgressBar)
        if self.job.get("status") == "completed":
            bar.update(total=1, progress=1)
        elif progress and progress.get("total"):
            bar.update(total=progress["total"], progress=progress.get("step") or 0)
        self.query_one("#job-progress", Static).update(progress_text(progress))

    def _take_metric(self, name: str, step: int, value: float) -> None:
        table = self.query_one("#job-metrics", DataTable)
        if name in table.rows:
            table.update_cell(name, "latest", metric(value), update_width=True)
            table.update_cell(name, "step", str(step))
        else:
            table.add_row(name, metric(value), str(step), key=name)
        if name in SERIES:
            self.query_one("#job-chart", LossChart).add(name, step, value)

    def handle_event(self, event: dict[str, Any]) -> None:
        if event.get("job_id") != self.job_id:
            return
        kind, data = event["type"], event["data"]
        if kind == "job.log":
            line = str(data.get("line", ""))
            self.pushed.append((event["seq"], line))
            if event["seq"] > self.last_log_seq:
                self.last_log_seq = event["seq"]
                self.query_one("#job-log", LogView).add(line)
        elif kind == "job.progress":
            self.job["progress"] = data
            self._show_progress(data)
        elif kind == "job.metric":
            for name, value in data.get("values", {}).items():
                self._take_metric(name, int(data.get("step", 0)), float(value))
        elif kind in ("job.status", "job.checkpoint"):
            self.reload_job()

    def reload_job(self) -> None:
        self.io(lambda: self._reload_job(), f"loading {self.job_id}", group="job")

    async def _reload_job(self) -> None:
        self.job = await self.call("jobs.get", id=self.job_id)
        self._show_job()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        status = self.job.get("status")
        if action == "cancel_job":
            return status not in TERMINAL_JOB_STATUSES
        if action == "resume_job":
            return status in ("failed", "cancelled")
        return True

    def action_cancel_job(self) -> None:
        self.confirm(
            f"Cancel {self.job_id}? A train job saves a checkpoint first.",
            lambda: self.io(
                lambda: self.call("jobs.cancel", id=self.job_id), f"cancelling {self.job_id}"
            ),
        )

    def action_resume_job(self) -> None:
        self.confirm(
            f"Resume {self.job_id} from its checkpoint?",
            lambda: self.io(
                lambda: self.call("jobs.resume", id=self.job_id), f"resuming {self.job_id}"
            ),
        )

    def action_toggle_follow(self) -> None:
        log = self.query_one("#job-log", LogView)
        log.follow(not log.following)
        self.notify("following the log" if log.following else "stopped following the log")

    def action_from_start(self) -> None:
        self.io(lambda: self._from_start(), f"loading the log of {self.job_id}")

    async def _from_start(self) -> None:
        logs = await self.call("jobs.logs", id=self.job_id, limit=MAX_LINES)
        self._show_log(logs)
        log = self.query_one("#job-log", LogView)
        log.follow(False)
        log.scroll_home(animate=False)

    def action_tab(self, tab: str) -> None:
        self.query_one("#job-tabs", TabbedContent).active = tab
