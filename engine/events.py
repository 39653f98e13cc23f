"""The engine's side of the event stream: one JSON object per line on stdout.

The events are the contract's (`forge_api.engine_events`); the daemon reads these lines, keeps
them in `<run-dir>/events.jsonl` and the store, and fans them out. Anything else a library
prints (warnings, tracebacks) arrives as a plain log line.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from engine.tracking import Tracker
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
)


class Emitter:
    """Writes the events of one job, each as one line, flushed at once."""

    def __init__(self, out: TextIO | None = None, errors_only_as: str | None = None) -> None:
        self.out = out or sys.stdout
        self.errors_only_as = errors_only_as
        """Set in the second and later processes of a data-parallel job (`rank N`): the first
        speaks for the job; these only report their errors, prefixed with this."""
        self.started = time.monotonic()
        self.tracker = Tracker([], self.log)
        """Where metrics also go (`[tracking]`): none until the job's spec names some."""

    def emit(self, event: EngineEvent) -> None:
        if self.errors_only_as is not None:
            if not isinstance(event, ErrorEvent):
                return
            event = ErrorEvent(message=f"{self.errors_only_as}: {event.message}")
        self.out.write(event_line(event) + "\n")
        self.out.flush()

    def log(self, message: str, level: str = "info") -> None:
        self.emit(LogEvent(level=level, message=message))

    def progress(
        self,
        step: int,
        total: int | None,
        *,
        stage: str | None = None,
        tokens_per_s: float | None = None,
        eta_s: float | None = None,
    ) -> None:
        """`eta_s`: the job's own estimate of the time left (a train job knows its budget);
        else the steps to go at the pace so far."""
        eta = eta_s
        if eta is None and total and step:
            elapsed = time.monotonic() - self.started
            eta = round(elapsed / step * (total - step), 2)
        self.emit(
            ProgressEvent(step=step, total=total, stage=stage, tokens_per_s=tokens_per_s, eta_s=eta)
        )

    def metric(self, step: int, **values: float) -> None:
        self.emit(MetricEvent(step=step, values=values))
        self.tracker.metrics(step, values)

    def checkpoint(self, path: str, step: int, **info: Any) -> None:
        self.emit(CheckpointEvent(path=path, step=step, **info))

    def artifact(self, kind: str, path: str, **info: Any) -> None:
        self.emit(ArtifactEvent(kind=kind, path=path, **info))

    def token(self, text: str) -> None:
        self.emit(TokenEvent(text=text))

    def done(self, **summary: Any) -> None:
        self.emit(DoneEvent(summary=summary))

    def error(self, message: str) -> None:
        self.emit(ErrorEvent(message=message))
