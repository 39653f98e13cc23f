"""The pydantic models that cross the socket: every method's params and result, and events.

The daemon validates each request's params against these before doing anything; the TUI parses
the records it shows with them, and so does the CLI for one record (`forge missions show`); the
CLI's listings read plain JSON, to start fast. Field names are the wire names. A mission's and a
model's data, and a dataset's card, are typed in `mission_data` and `model_data`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_api.mission_data import DatasetCard, MissionData
from forge_api.model_data import ModelData
from forge_api.names import (
    JobKind,
    JobStatus,
    MissionStage,
    MissionStep,
    ModelKind,
)


class Params(BaseModel):
    """Base of every params model: unknown params are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Record(BaseModel):
    """Base of every result model."""

    model_config = ConfigDict(extra="ignore")


class NoParams(Params):
    pass


class IdParams(Params):
    id: str = Field(min_length=1, max_length=200)


# ---- jobs -------------------------------------------------------------------------------------


class Progress(Record):
    step: int = 0
    total: int | None = None
    stage: str | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None


class Job(Record):
    id: str
    kind: JobKind
    status: JobStatus
    name: str
    params: dict[str, Any]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 0
    pid: int | None = None
    exit_code: int | None = None
    error: str | None = None
    progress: Progress | None = None
    checkpoint: str | None = None
    artifacts: list[dict[str, Any]] = []
    mission_id: str | None = None
    not_before: float | None = None
    summary: dict[str, Any] | None = Field(
        None, description="what the job reported when it completed (train: `chosen` values)"
    )
    placement: dict[str, Any] | None = Field(
        None,
        description="where it runs when not as the daemon's child: on a Ray cluster, "
        "`executor`, `address` and `ray_job_id`",
    )
    run_dir: str
    stalled_s: float | None = Field(
        None,
        description="a running job silent past jobs.stall_after_s: seconds since its last output",
    )


class JobsListParams(Params):
    status: list[JobStatus] | None = None
    kind: list[JobKind] | None = None
    text: str | None = Field(None, max_length=200, description="substring of the name or id")
    limit: int = Field(100, ge=1, le=10_000)
    offset: int = Field(0, ge=0)


class JobsListResult(Record):
    jobs: list[Job]
    total: int


class JobsSubmitParams(Params):
    kind: JobKind
    params: dict[str, Any] = {}
    name: str | None = Field(None, max_length=200)


class JobsLogsParams(Params):
    id: str = Field(min_length=1, max_length=200)
    after_seq: int = Field(0, ge=0, description="only lines with a larger seq")
    tail: int | None = Field(None, ge=1, le=10_000, description="only the last N lines")
    limit: int = Field(
        5_000, ge=1, le=10_000, description="at most this many lines; page on with after_seq"
    )


class LogLine(Record):
    seq: int
    ts: float
    line: str


class JobsLogsResult(Record):
    lines: list[LogLine]
    last_seq: int
    more: bool = Field(
        False, description="more lines follow last_seq: ask again with after_seq=last_seq"
    )


class JobsMetricsParams(Params):
    id: str = Field(min_length=1, max_length=200)
    names: list[str] | None = None


class Metric(Record):
    step: int
    name: str
    value: float
    ts: float


class JobsMetricsResult(Record):
    metrics: list[Metric]


# ---- missions ---------------------------------------------------------------------------------


class Mission(Record):
    id: str
    source_id: str | None
    stage: MissionStage
    title: str
    created_at: float
    decided_at: float | None = None
    reason: str | None = Field(None, description="why it was rejected")
    failed_step: MissionStep | None = Field(None, description="the step that failed")
    failure: str | None = Field(None, description="why that step failed")
    data: MissionData = MissionData()


class MissionsListParams(Params):
    stage: list[MissionStage] | None = None
    source_id: str | None = None
    limit: int = Field(100, ge=1, le=10_000)


class MissionsListResult(Record):
    missions: list[Mission]


class MissionApproveParams(IdParams):
    set: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="changes to the plan before it starts: any train param (steps, max_seq_len,"
        " rank, base_model, max_minutes, batch_size, ...)",
    )


class MissionRejectParams(IdParams):
    reason: str = Field(min_length=1, max_length=2000)


class MissionRetryParams(IdParams):
    pass


# ---- sources and datasets ---------------------------------------------------------------------


class Source(Record):
    id: str
    path: str
    name: str
    added_at: float
    last_commit: str | None = None
    trained_commit: str | None = None
    config: dict[str, Any] = {}
    pending: dict[str, Any] | None = Field(
        None,
        description="new material at the last scan, and whether it is enough; `error` when"
        " git could not read the repository (why, and what to do)",
    )


class SourcesListResult(Record):
    sources: list[Source]


BuilderName = Literal["code", "docs", "commits", "jsonl"]
ALL_BUILDERS: tuple[BuilderName, ...] = ("code", "docs", "commits", "jsonl")


class Thresholds(Params):
    min_commits: int | None = Field(None, ge=1)
    min_tokens: int | None = Field(None, ge=0)


class SourcesAddParams(Params):
    path: str = Field(min_length=1, max_length=4096)
    name: str | None = Field(None, max_length=200)
    include: list[str] = []
    exclude: list[str] = []
    builders: list[BuilderName] = Field(default_factory=lambda: list(ALL_BUILDERS), min_length=1)
    thresholds: Thresholds = Thresholds()


class ScanResult(Record):
    mission: Mission | None


class Dataset(Record):
    id: str
    name: str
    source_id: str | None
    path: str
    created_at: float
    examples: int
    card: DatasetCard = DatasetCard()


class ImportedDataset(Dataset):
    already_imported: bool = Field(
        False, description="the same content was imported before: this is that dataset"
    )


class DatasetsListParams(Params):
    source_id: str | None = None


class DatasetsListResult(Record):
    datasets: list[Dataset]


class DatasetsPreviewParams(IdParams):
    limit: int = Field(20, ge=1, le=1000)


class DatasetsPreviewResult(Record):
    examples: list[dict[str, Any]]
    total: int


class DatasetsImportParams(Params):
    path: str = Field(min_length=1, max_length=4096)
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$",
        description="a plain name (no folder: it names a file in the data dir)",
    )


# ---- models -----------------------------------------------------------------------------------


class Model(Record):
    id: str
    kind: ModelKind
    name: str
    path: str | None
    base: str | None = None
    job_id: str | None = None
    created_at: float
    data: ModelData = ModelData()


class ModelsListParams(Params):
    kind: list[ModelKind] | None = None


class ModelsListResult(Record):
    models: list[Model]


class ModelsDeployParams(IdParams):
    tag: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9._-]{0,99}(:[A-Za-z0-9][A-Za-z0-9._-]{0,99})?$",
        description="the Ollama name; default forge-<source>:<next number>",
    )
    mode: Literal["adapter", "merged"] | None = Field(
        None, description="default: adapter where Ollama has the base and takes adapters"
    )


class ModelsRollbackParams(Params):
    source_id: str | None = Field(None, min_length=1, max_length=200)
    alias: str | None = Field(None, min_length=1, max_length=200, description="e.g. forge-x:latest")


class ModelsRollbackResult(Record):
    alias: str
    model: Model


# ---- system -----------------------------------------------------------------------------------


class Accelerator(Record):
    kind: Literal["cuda", "mps", "cpu"]
    name: str
    memory_bytes: int | None = None
    count: int = Field(1, description="how many there are (GPUs this daemon may use)")


class QueueState(Record):
    queued: int
    running: int
    max_parallel: int


class SystemStatus(Record):
    version: str
    pid: int
    uptime_s: float
    socket: str
    data_dir: str
    accelerator: Accelerator
    memory_total_bytes: int | None
    memory_available_bytes: int | None
    queue: QueueState
    running: list[Job]
    subscribers: int
    last_seq: int
    mcp_allow_approve: bool = Field(
        False, description="`[mcp] allow_approve`: whether agents on `forge mcp` may approve"
    )


class ConfigReloaded(Record):
    changed: list[str] = Field(description="the `section.key`s whose values changed")
    restart_needed: list[str] = Field(
        description="those of them read only at start: they apply at the next start"
    )


class SystemHealth(Record):
    ok: bool
    checks: dict[str, str]


# ---- events -----------------------------------------------------------------------------------


class EventsSubscribeParams(Params):
    since: int | None = Field(
        None, ge=0, description="replay stored events with a larger seq before live ones"
    )
    types: list[str] | None = Field(
        None, description="event types or prefixes ending in '.', e.g. 'job.' or 'mission.proposed'"
    )
    job_id: str | None = None


class EventsSubscribeResult(Record):
    subscription: int
    last_seq: int


class EventsUnsubscribeParams(Params):
    subscription: int


class Event(Record):
    """What `event` notifications carry; `seq` increases by one per stored event."""

    seq: int
    ts: float
    type: str
    job_id: str | None = None
    data: dict[str, Any] = {}


class Ok(Record):
    ok: bool = True
