"""jobs.*: list, get, submit, cancel, logs and metrics of jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.data import DataError, dataset_files
from forge_api.backend_rules import Machine, data_parallel_problem, train_problem
from forge_api.jobs import UnknownKind, parse_params, resumable
from forge_api.names import TERMINAL_JOB_STATUSES
from forge_api.protocol import INVALID_PARAMS, NOT_FOUND, UNSUPPORTED
from forge_api.schema import (
    IdParams,
    Job,
    JobsListParams,
    JobsListResult,
    JobsLogsParams,
    JobsLogsResult,
    JobsMetricsParams,
    JobsMetricsResult,
    JobsSubmitParams,
    LogLine,
)
from forged.context import Session
from forged.engine_command import TooFewDevices, processes
from forged.registry import RegistryError, UnknownModel
from forged.rpc import Registry, RpcError, invalid_state, lookup, not_found, params_error

LOG_PAGE_BYTES = 4 * 1024 * 1024
"""Text in one jobs.logs reply: far below the reply cap even with every line escaped."""


def resolve_job(s: Session, ref: str) -> str:
    """A job id from a full id or a unique prefix of one; -32001 otherwise."""
    job_id = s.services.store.resolve_job_id(ref)
    if job_id is None:
        raise not_found("job", ref)
    return job_id


def register(reg: Registry[Session]) -> None:
    @reg.method("jobs.list", JobsListParams)
    async def jobs_list(p: JobsListParams, s: Session) -> JobsListResult:
        """Jobs, newest first, filtered by status, kind and a text in the name or id."""
        jobs, total = s.services.store.list_jobs(
            status=p.status, kind=p.kind, text=p.text, limit=p.limit, offset=p.offset
        )
        return JobsListResult(jobs=s.services.runner.with_stall(jobs), total=total)

    @reg.method("jobs.get", IdParams)
    async def jobs_get(p: IdParams, s: Session) -> Job:
        """One job by id (or a unique prefix of its id)."""
        return s.services.runner.with_stall([s.services.store.get_job(resolve_job(s, p.id))])[0]

    @reg.method("jobs.submit", JobsSubmitParams)
    async def jobs_submit(p: JobsSubmitParams, s: Session) -> Job:
        """Queue a job; its params are validated for its kind before anything is stored."""
        try:
            params = parse_params(p.kind, p.params)
        except UnknownKind as exc:
            raise RpcError(UNSUPPORTED, str(exc), {"param": "kind", "value": p.kind}) from exc
        except ValidationError as exc:
            raise params_error(exc, prefix="params") from exc
        values = params.model_dump(mode="json")
        if p.kind == "train":
            _refuse_what_cannot_train_here(s, values)
        _resolve_refs(s, p.kind, values)
        _refuse_outside_data_dir(s, values)
        name = p.name or _default_name(p.kind, values)
        return s.services.runner.submit(p.kind, name, values)

    @reg.method("jobs.cancel", IdParams)
    async def jobs_cancel(p: IdParams, s: Session) -> Job:
        """Cancel a queued job now, or a running one by SIGTERM (SIGKILL after the grace period)."""
        job_id = resolve_job(s, p.id)
        job = s.services.store.get_job(job_id)
        if job.status in TERMINAL_JOB_STATUSES:
            raise invalid_state(f"job {job_id} is already {job.status}", status=job.status)
        return await s.services.runner.cancel(job_id)

    @reg.method("jobs.resume", IdParams)
    async def jobs_resume(p: IdParams, s: Session) -> Job:
        """Queue a cancelled or failed job again, to continue from its last checkpoint."""
        job_id = resolve_job(s, p.id)
        job = s.services.store.get_job(job_id)
        if job.status not in ("cancelled", "failed"):
            raise invalid_state(
                f"job {job_id} is {job.status}; only a cancelled or failed job can be resumed",
                status=job.status,
            )
        if not resumable(job.kind) or not job.checkpoint:
            raise invalid_state(
                f"job {job_id} has no checkpoint to resume from; submit it again", kind=job.kind
            )
        return s.services.runner.resume(job_id)

    @reg.method("jobs.logs", JobsLogsParams)
    async def jobs_logs(p: JobsLogsParams, s: Session) -> JobsLogsResult:
        """Stored log lines; follow new ones with events.subscribe(job_id, types=["job.log"])."""
        job_id = resolve_job(s, p.id)
        # One more than asked, to tell whether more follow; and no more text than a page holds.
        lines = s.services.store.log_lines(
            job_id, after_seq=p.after_seq, tail=p.tail, limit=p.limit + 1
        )
        more = p.tail is None and len(lines) > p.limit
        lines = lines[-p.limit :] if p.tail is not None else lines[: p.limit]
        kept = _within(lines, LOG_PAGE_BYTES, from_end=p.tail is not None)
        more = more or (p.tail is None and len(kept) < len(lines))
        last = kept[-1].seq if kept else p.after_seq
        return JobsLogsResult(lines=kept, last_seq=last, more=more)

    @reg.method("jobs.metrics", JobsMetricsParams)
    async def jobs_metrics(p: JobsMetricsParams, s: Session) -> JobsMetricsResult:
        """Every metric a job reported, by step (loss, lr, eval loss, ...)."""
        job_id = resolve_job(s, p.id)
        return JobsMetricsResult(metrics=s.services.store.metrics(job_id, p.names))


def _within(lines: list[LogLine], budget: int, *, from_end: bool) -> list[LogLine]:
    """As many lines as fit `budget` characters, from the start (a page) or the end (a tail)."""
    ordered = reversed(lines) if from_end else iter(lines)
    kept: list[LogLine] = []
    for line in ordered:
        budget -= len(line.line) + 64  # the seq, the time stamp and the JSON around them
        if budget < 0 and kept:
            break
        kept.append(line)
    return kept[::-1] if from_end else kept


def _resolve_refs(s: Session, kind: str, values: dict[str, Any]) -> None:
    """Ids a person may pass instead of paths: a dataset id, a train job for its adapter, and
    any base model reference `forge models ls` shows (the registry's one resolver)."""
    store = s.services.store
    base = values.get("base_model")
    if isinstance(base, str):
        try:
            values["base_model"] = s.services.models.resolve_base(base)
        except UnknownModel as exc:
            # Not on disk yet: fine while a prepare-model job that may build it is waiting,
            # else refused now rather than failing when the job's turn comes.
            pending = store.list_jobs(status=["queued", "running"], kind=["prepare-model"])[1]
            if not pending:
                raise RpcError(
                    INVALID_PARAMS, f"params.base_model: {exc}", {"param": "params.base_model"}
                ) from None
        except RegistryError as exc:
            raise RpcError(
                INVALID_PARAMS, f"params.base_model: {exc}", {"param": "params.base_model"}
            ) from None
    if isinstance(values.get("dataset"), str) and values["dataset"].startswith("ds-"):
        values["dataset"] = lookup(store.get_dataset, "dataset", values["dataset"]).path
    path = values.get("path")
    local = isinstance(path, str) and ":" not in path.split("/")[0]  # not hf: or ollama:
    if kind == "prepare-model" and local and not Path(str(path)).exists():
        raise RpcError(
            INVALID_PARAMS,
            f"params.path: {path}: no such model folder or .gguf file on the daemon's machine",
            {"param": "params.path"},
        )
    for key in ("adapter", "previous_adapter"):
        ref = values.get(key)
        if isinstance(ref, str) and ref.startswith("job-"):
            job_id = store.resolve_job_id(ref)
            if job_id is None:
                raise RpcError(NOT_FOUND, f"no job {ref!r}", {"param": f"params.{key}"})
            values[key] = str(Path(store.get_job(job_id).run_dir) / "adapter")


def _refuse_outside_data_dir(s: Session, values: dict[str, Any]) -> None:
    """Jobs read datasets only from the data dir (symlinks followed), so a request on the socket
    cannot make the daemon read and train on an arbitrary file; files from elsewhere come in
    through datasets.import, which checks every line on the way."""
    ref = values.get("dataset")
    if not isinstance(ref, str):
        return
    root = s.services.paths.datasets_dir.resolve()
    path = Path(ref)
    if path.is_absolute() and path.resolve().is_relative_to(root):
        if path.is_dir():
            # A folder's own files too: a link in it must not lead out (the engine checks
            # again as it reads, since the folder may change before the job starts).
            try:
                dataset_files(path, inside=root)
            except DataError as exc:
                raise RpcError(
                    INVALID_PARAMS, f"params.dataset: {exc}", {"param": "params.dataset"}
                ) from None
        return
    if path.is_absolute() and not path.exists():
        raise RpcError(
            INVALID_PARAMS,
            f"params.dataset: {ref}: no such file or folder on the daemon's machine",
            {"param": "params.dataset", "value": ref},
        )
    raise RpcError(
        INVALID_PARAMS,
        f"dataset {ref} is outside the data dir ({root}); import it first with "
        f"`forge datasets import {ref}` (datasets.import) and pass its ds- id",
        {"param": "params.dataset", "value": ref},
    )


def _refuse_what_cannot_train_here(s: Session, values: dict[str, Any]) -> None:
    """A method or backend this machine cannot run (QLoRA or Unsloth without CUDA, MLX without
    mlx-lm), or more GPUs than it has, is refused now, by the rule the engine itself applies,
    not when its turn comes. Jobs sent to a Ray cluster are judged there instead: its workers,
    not this machine, run them."""
    on_ray = s.services.runner.config.executor == "ray"
    accelerator = s.services.hardware.accelerator
    try:
        n = processes("train", values, None if on_ray else s.services.runner.gpus)
    except TooFewDevices as exc:
        raise RpcError(INVALID_PARAMS, str(exc), {"param": "params.devices"}) from None
    if n > 1 and (problem := data_parallel_problem(str(values["backend"]))):
        raise RpcError(INVALID_PARAMS, problem, {"param": "params.devices"})
    if on_ray:
        return
    cuda = accelerator.kind == "cuda" or Path("/proc/driver/nvidia").exists()
    why = train_problem(str(values["backend"]), str(values["method"]), Machine.here(cuda=cuda))
    if why:
        raise RpcError(INVALID_PARAMS, why, {"param": why.split(":", 1)[0]})


def _default_name(kind: str, params: dict[str, Any]) -> str:
    if kind == "prepare-model":
        return f"prepare {params.get('path') or params.get('name') or 'tiny-llama'}"
    if kind == "train":
        return f"train {params['method']} on {Path(str(params['dataset'])).name}"
    if kind == "merge":
        return f"merge into {params['name']}"
    return f"{kind} {Path(str(params.get('adapter') or params.get('base_model'))).name}"
