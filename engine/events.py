"""The engine's side of the event stream: one JSON object per line on stdout.

The daemon reads these lines, keeps them in `<run-dir>/events.jsonl` and the store, and fans
them out. Anything else a library prints (warnings, tracebacks) arrives as a plain log line.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO


class Emitter:
    """Writes the design's events: log, progress, metric, checkpoint, artifact, done, error."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.started = time.monotonic()

    def emit(self, type_: str, **data: Any) -> None:
        line = json.dumps({"type": type_, "ts": time.time(), **data}, default=str)
        self.out.write(line + "\n")
        self.out.flush()

    def log(self, message: str, level: str = "info") -> None:
        self.emit("log", level=level, message=message)

    def progress(
        self,
        step: int,
        total: int | None,
        *,
        stage: str | None = None,
        tokens_per_s: float | None = None,
    ) -> None:
        elapsed = time.monotonic() - self.started
        eta = None
        if total and step:
            eta = round(elapsed / step * (total - step), 2)
        self.emit(
            "progress", step=step, total=total, stage=stage, tokens_per_s=tokens_per_s, eta_s=eta
        )

    def metric(self, step: int, **values: float) -> None:
        self.emit("metric", step=step, values=values)

    def checkpoint(self, path: str, step: int, **info: Any) -> None:
        self.emit("checkpoint", path=path, step=step, **info)

    def artifact(self, kind: str, path: str, **info: Any) -> None:
        self.emit("artifact", kind=kind, path=path, **info)

    def done(self, **summary: Any) -> None:
        self.emit("done", summary=summary)

    def error(self, message: str) -> None:
        self.emit("error", message=message)
