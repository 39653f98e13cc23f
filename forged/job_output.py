"""What one running job's engine says, recorded: each line of its output is parsed as an
engine event (`forge_api.engine_events`) or kept as a log line, written to the job's
`events.jsonl`, and applied to the job in the store, which announces each change as it commits.

The runner owns the queue and the processes; this owns the stream, so a line the store cannot
take (a full disk) is counted as lost and the output keeps being drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from forge_api.engine_events import (
    ArtifactEvent,
    CheckpointEvent,
    DoneEvent,
    EngineEvent,
    ErrorEvent,
    LogEvent,
    MetricEvent,
    ProgressEvent,
    TokenEvent,
    event_line,
    parse_engine_event,
)
from forge_api.run_dir import RunDir
from forge_api.schema import Job
from forged.job_handle import JobHandle
from forged.store import Store

log = logging.getLogger(__name__)

ANSI_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")
"""Terminal control sequences (CSI colours and cursor moves, OSC titles, two-byte escapes)."""

LOG_LINE_CAP = 8192
"""The longest log line kept, in characters."""

LOSSLESS = {"log", "progress", "token"}
"""Events a job may lose to a failing store and still count as completed (what it made is
recorded by the others: checkpoints, artifacts, metrics)."""


@dataclass
class Running:
    job: Job
    handle: JobHandle
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    last_error: str | None = None
    last_output: str | None = None
    done: bool = False
    done_recorded: bool = False
    kill_timer: asyncio.TimerHandle | None = None
    lost: dict[str, int] = field(default_factory=dict)
    """Events that could not be stored, by type (the store failed: a full disk)."""
    store_error: str | None = None
    last_seen: float = field(default_factory=time.monotonic)
    """When the job last said anything: a stopped (SIGSTOP) or hung job goes silent."""


class OutputRecorder:
    """Reads each running job's output and records it; tells the runner's hooks of what the
    job made (`artifact`) and of its end when it says `done` (`finished`)."""

    def __init__(
        self,
        store: Store,
        artifact: Callable[[str, ArtifactEvent], None],
        finished: Callable[[Job], None],
    ) -> None:
        self.store = store
        self.artifact = artifact
        self.finished = finished

    async def drain(self, r: Running) -> None:
        """Read the job's output to its end (the process closed it), recording each line."""
        record = open_record(RunDir.of(r.job.run_dir).events)
        try:
            async for raw in r.handle.lines():
                r.last_seen = time.monotonic()
                self.ingest(r, raw, record)
        finally:
            if record is not None:
                with contextlib.suppress(OSError):
                    record.close()

    def ingest(self, r: Running, raw: bytes, record: IO[str] | None) -> None:
        """One line of the child's output: store it, apply it to the job, fan it out. A line
        the store cannot take (a full disk) is counted as lost, never fatal: the job's output
        keeps being drained, so the job is not blocked on a full pipe and can be cancelled."""
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text.strip():
            return
        event = parse_engine_event(text)
        if event is None:
            # tqdm redraws with \r: only the last state of the line is worth keeping; colour
            # and cursor codes (mlx-lm's, a library's) are for a terminal, not for a log.
            text = ANSI_ESCAPE.sub("", text.rsplit("\r", 1)[-1])[:LOG_LINE_CAP]
            event = LogEvent(level="output", message=text)
            r.last_output = text
        if record is not None:
            with contextlib.suppress(OSError, ValueError):
                record.write(event_line(event) + "\n")
                record.flush()
        try:
            self.apply(r, event)
        except Exception as exc:
            if not r.lost:
                log.warning(
                    "job %s: the store could not record its %s event: %s", r.job.id, event.type, exc
                )
            r.lost[event.type] = r.lost.get(event.type, 0) + 1
            r.store_error = str(exc)

    def apply(self, r: Running, ev: EngineEvent) -> None:
        """Record one engine event on its job (the store announces each change as it commits)."""
        job_id = r.job.id
        if isinstance(ev, LogEvent):
            self.log(job_id, ev.message[:LOG_LINE_CAP], ev.level)
        elif isinstance(ev, ProgressEvent):
            progress = ev.model_dump(include={"step", "total", "stage", "tokens_per_s", "eta_s"})
            self.store.update_job(job_id, {"progress": progress}, ("job.progress", progress))
        elif isinstance(ev, MetricEvent):
            values = {k: v for k, v in ev.values.items() if math.isfinite(v)}
            if values:
                self.store.add_metrics(job_id, ev.step, values)
            for name in sorted(set(ev.values) - set(values)):
                note = f"{name} at step {ev.step} is {ev.values[name]} (not a number: diverged?)"
                self.log(job_id, note, "warning")
        elif isinstance(ev, CheckpointEvent):
            info = ev.model_dump(exclude={"type", "ts"})
            self.store.update_job(job_id, {"checkpoint": ev.path}, ("job.checkpoint", info))
        elif isinstance(ev, ArtifactEvent):
            unnamed = {key for key in ("name", "base") if getattr(ev, key) is None}
            self.store.add_artifact(job_id, ev.model_dump(exclude={"type", "ts", *unnamed}))
            self.artifact(job_id, ev)
        elif isinstance(ev, DoneEvent):
            # Completed from this moment: a daemon killed before the process exits must not
            # find it `running` and run it again.
            r.done = True
            self.log(job_id, "done", "info")
            job = self.store.update_job(
                job_id,
                {
                    "status": "completed",
                    "finished_at": time.time(),
                    "pid": None,
                    "summary": ev.summary,
                },
                ("job.status", {"status": "completed", "summary": ev.summary}),
            )
            r.done_recorded = True
            self.finished(job)
        elif isinstance(ev, TokenEvent):
            self.store.append_event("job.token", job_id, {"text": ev.text[:LOG_LINE_CAP]})
        elif isinstance(ev, ErrorEvent):
            r.last_error = ev.message
            self.log(job_id, f"error: {r.last_error}", "error")

    def log(self, job_id: str, line: str, level: str = "info") -> None:
        """One line in the job's log."""
        self.store.append_event("job.log", job_id, {"line": line, "level": level})


def failure_reason(code: int, r: Running) -> str:
    """Why a job whose engine exited without `done` failed: the exit, and its last words."""
    note = r.handle.end_note()
    if note is not None:
        how = note
    elif code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        how = f"the engine was killed by {name}"
        if -code == signal.SIGKILL:
            # Not ours (a cancel is recorded as cancelled): usually the kernel's OOM killer.
            how += (
                " (not sent by forge; the kernel sends it when memory runs out: "
                "see `journalctl -k | grep -i oom`)"
            )
    else:
        how = f"the engine exited with code {code}"
    last = r.last_error or r.last_output
    return f"{how}: {last}" if last else how


def open_record(path: Path) -> IO[str] | None:
    """The job's events.jsonl, or None where it cannot be opened (a full disk): the job runs on
    and its events still reach the store."""
    try:
        return open(path, "a", encoding="utf-8")  # closed by drain
    except OSError as exc:
        log.warning("cannot open %s: %s", path, exc)
        return None


def recorded_lines(run_dir: Path) -> int:
    """How many lines of output the job's events.jsonl holds (one per non-blank line of its
    engine's output): where a re-attached job's output picks up again."""
    try:
        with open(RunDir(run_dir).events, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
