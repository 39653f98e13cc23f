"""The engine → daemon stream: what a job's process says on stdout, one JSON object per line.

The second wire protocol (the socket API is the first). The engine's `Emitter` builds these
models and writes them; the daemon's runner parses each line with `parse_engine_event`, one
adapter for the whole union, so both sides agree on every field. A line that is not one of
these (a library's warning, a traceback) is a plain log line to the runner.

Events may carry fields beyond the ones named here (an artifact's `rank`, a checkpoint's
`stage`): they are kept as they are and recorded with the event.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class _Event(BaseModel):
    # NaN and infinities are written as JSON's common extension (Python's json reads them), so
    # a diverged loss arrives as what it is rather than as a missing value.
    model_config = ConfigDict(extra="allow", ser_json_inf_nan="constants")
    ts: float = Field(default_factory=time.time)

    def extras(self) -> dict[str, Any]:
        """The fields not named by the model, as sent."""
        return dict(self.model_extra or {})


class LogEvent(_Event):
    type: Literal["log"] = "log"
    message: str
    level: str = "info"


class ProgressEvent(_Event):
    type: Literal["progress"] = "progress"
    step: int
    total: int | None = None
    stage: str | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None


class MetricEvent(_Event):
    """Values by name at a step; a value that is not a finite number (a diverged loss) is
    recorded in the log, not as a metric."""

    type: Literal["metric"] = "metric"
    step: int = 0
    values: dict[str, float] = {}


class CheckpointEvent(_Event):
    type: Literal["checkpoint"] = "checkpoint"
    path: str
    step: int


class ArtifactEvent(_Event):
    """Something the job made. `kind` names it (`adapter`, `base-model`, `merged-model`,
    `ollama-model`, `eval-report`, ...); the registry records the kinds that are models."""

    type: Literal["artifact"] = "artifact"
    kind: str
    path: str
    name: str | None = None
    base: str | None = None


class TokenEvent(_Event):
    """A piece of an `infer` job's answer, as it is generated."""

    type: Literal["token"] = "token"
    text: str


class ErrorEvent(_Event):
    """Why the job is failing; the engine exits non-zero after it."""

    type: Literal["error"] = "error"
    message: str


class DoneEvent(_Event):
    """The job finished its work; from this line on it is completed, whatever follows."""

    type: Literal["done"] = "done"
    summary: dict[str, Any] = {}


EngineEvent = Annotated[
    LogEvent
    | ProgressEvent
    | MetricEvent
    | CheckpointEvent
    | ArtifactEvent
    | TokenEvent
    | ErrorEvent
    | DoneEvent,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[EngineEvent] = TypeAdapter(EngineEvent)


def parse_engine_event(line: str) -> EngineEvent | None:
    """The event a line of engine output holds, or None where it holds none (a plain line)."""
    if not line.startswith("{"):
        return None
    try:
        return _ADAPTER.validate_json(line)
    except ValidationError:
        return None


def event_line(event: EngineEvent) -> str:
    """One event as the engine writes it (extra fields kept)."""
    return event.model_dump_json(fallback=str)  # numpy numbers and the like, as text
