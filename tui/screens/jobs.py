"""All jobs: filter by status and kind, search by name or id, sort, cancel; live status."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Select
from textual.widgets.data_table import CellDoesNotExist

from forge_api.jobs import KINDS as JOB_KINDS
from forge_api.names import TERMINAL_JOB_STATUSES, JobKind, JobStatus
from forge_client.format import ago, job_status, progress_brief
from tui.messages import OpenJob
from tui.plain import cell
from tui.screens.base import ForgeScreen

STATUSES: tuple[JobStatus, ...] = ("queued", "running", "completed", "failed", "cancelled")
KINDS: tuple[JobKind, ...] = tuple(JOB_KINDS)
# What matters first, the free-text name last: on a narrow terminal the name is what is cut.
COLUMNS = ("id", "status", "created", "kind", "progress", "name")
# What each column sorts by: the job field behind it (progress: its start time).
SORT_FIELDS = dict(
    zip(COLUMNS, ("id", "status", "created_at", "kind", "started_at", "name"), strict=True)
)
LIST_LIMIT = 500


class JobsScreen(ForgeScreen):
    TITLE = "Jobs"
    RELOAD_ON: ClassVar[tuple[str, ...]] = ("job.status",)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("/", "search", "Search", id="jobs.search"),
        Binding("c", "cancel_job", "Cancel job", id="jobs.cancel"),
        Binding("o", "sort_next", "Sort", id="jobs.sort"),
    ]

    sort_column = "created"
    sort_reverse = True

    def body(self) -> ComposeResult:
        with Horizontal(id="job-filters", classes="filters"):
            yield Input(placeholder="search name or id (/)", id="job-search", compact=True)
            yield Select(
                [(s, s) for s in STATUSES], prompt="any status", id="job-status", compact=True
            )
            yield Select([(k, k) for k in KINDS], prompt="any kind", id="job-kind", compact=True)
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#jobs", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        table.focus()

    async def load(self) -> None:
        params: dict[str, Any] = {"limit": LIST_LIMIT}
        text = self.query_one("#job-search", Input).value.strip()
        status = self.query_one("#job-status", Select).value
        kind = self.query_one("#job-kind", Select).value
        if text:
            params["text"] = text
        if isinstance(status, str):
            params["status"] = [status]
        if isinstance(kind, str):
            params["kind"] = [kind]
        jobs = (await self.call("jobs.list", **params))["jobs"]
        field = SORT_FIELDS[self.sort_column]
        jobs.sort(key=lambda job: job.get(field) or 0, reverse=self.sort_reverse)
        table = self.query_one("#jobs", DataTable)
        keep = table.cursor_row
        table.clear()
        for job in jobs:
            table.add_row(*self._cells(job), key=job["id"])
        if jobs:
            table.move_cursor(row=min(keep, len(jobs) - 1))

    @staticmethod
    def _cells(job: dict[str, Any]) -> tuple[str | Text, ...]:
        return (
            job["id"],
            job_status(job),
            ago(job["created_at"]),
            job["kind"],
            progress_brief(job.get("progress")) if job["status"] == "running" else "",
            cell(job["name"]),
        )

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        same = column == self.sort_column
        self.sort_reverse = not self.sort_reverse if same else column == "created"
        self.sort_column = column
        self.reload()

    def action_sort_next(self) -> None:
        index = (COLUMNS.index(self.sort_column) + 1) % len(COLUMNS)
        self.sort_column = COLUMNS[index]
        self.sort_reverse = self.sort_column == "created"
        self.notify(f"sorted by {self.sort_column}")
        self.reload()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.reload()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.reload()

    def action_search(self) -> None:
        self.query_one("#job-search", Input).focus()

    def on_input_submitted(self) -> None:
        self.query_one("#jobs", DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.post_message(OpenJob(event.row_key.value))

    def action_cancel_job(self) -> None:
        job_id = self.cursor_key("jobs")
        if job_id:
            self.confirm(
                f"Cancel {job_id}?",
                lambda: self.io(lambda: self._cancel(job_id), f"cancelling {job_id}"),
            )

    async def _cancel(self, job_id: str) -> None:
        job = await self.call("jobs.cancel", id=job_id)
        self.notify(f"{job_id}: {job['status']}")

    def handle_event(self, event: dict[str, Any]) -> None:
        job_id = event.get("job_id")
        if not job_id or event["type"] not in ("job.progress", "job.status"):
            return
        table = self.query_one("#jobs", DataTable)
        try:
            if event["type"] == "job.progress":
                table.update_cell(job_id, "progress", progress_brief(event["data"]))
            else:
                status = event["data"].get("status", "")
                table.update_cell(job_id, "status", status)
                if status in TERMINAL_JOB_STATUSES:
                    table.update_cell(job_id, "progress", "")
        except CellDoesNotExist:
            pass
