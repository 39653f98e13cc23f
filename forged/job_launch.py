"""What starting one job takes: its run folder's `spec.json` (everything the engine needs,
nothing to ask back), then the engine as a child process group of the daemon (forked by the warm
engine host where the job may run warm) or as a job on a Ray cluster.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from forge_api import atomic_file
from forge_api.config import JobsConfig, TrackingConfig
from forge_api.jobs import JobSpec, TrackingSpec, holds_accelerator
from forge_api.paths import ForgePaths
from forge_api.run_dir import RunDir
from forge_api.schema import Job
from forged.engine_host import EngineHost, runs_warm
from forged.job_handle import JobHandle, LocalProcess
from forged.job_output import recorded_lines
from forged.ray_jobs import RayCluster

MAX_LINE = 1024 * 1024
"""The longest line read whole from a job's output; a longer one is read in pieces."""


def write_spec(job: Job, paths: ForgePaths, config: JobsConfig, tracking: TrackingConfig) -> Path:
    """The run dir and its spec.json."""
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = JobSpec(
        job_id=job.id,
        kind=job.kind,
        params=job.params,
        run_dir=str(run_dir),
        models_dir=str(paths.models_dir),
        datasets_dir=str(paths.datasets_dir),
        attempt=job.attempt + 1,
        resume_from=job.checkpoint,
        memory_limit_bytes=int(config.memory_limit_gb * 2**30) or None,
        tracking=tracking_spec(job, tracking, paths),
    )
    spec_file = RunDir(run_dir).spec
    atomic_file.write_text(spec_file, spec.model_dump_json(indent=2))
    return spec_file


async def spawn_local(
    host: EngineHost | None, spec_file: Path, command: list[str], params: dict[str, Any]
) -> JobHandle:
    """The engine as a child process group (`jobs.executor = "local"`): forked by the warm
    engine host where the job may run warm (`forged.engine_host`), else a process of its own."""
    env = dict(os.environ, FORGE_PARENT_PID=str(os.getpid()), PYTHONUNBUFFERED="1")
    if host is not None and runs_warm(command, params):
        warm = await host.spawn(command, spec_file.parent, env, MAX_LINE)
        if warm is not None:
            return warm
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=spec_file.parent,
        env=env,
        start_new_session=True,
        limit=MAX_LINE,
    )
    return LocalProcess(proc)


async def submit_to_ray(
    cluster: RayCluster,
    config: JobsConfig,
    job: Job,
    spec_file: Path,
    command: list[str],
    n: int,
) -> JobHandle:
    """The engine as a job on the Ray cluster at `jobs.ray_address`, asking for the GPUs a
    model-loading job needs (`jobs.ray_gpus_per_job` each of its `n` processes; none for a
    deploy)."""
    per = config.ray_gpus_per_job if holds_accelerator(job.kind, job.params) else 0
    return await cluster.submit(
        job.id,
        job.attempt + 1,
        spec_file,
        command,
        config.ray_cpus_per_job,
        per * n,
        config.cancel_grace_s,
        recorded_lines(spec_file.parent),
    )


TRACKED_KINDS = frozenset({"train", "eval"})
"""The kinds whose metrics `[tracking]` sends on: the others measure nothing worth a chart."""


def tracking_spec(job: Job, tracking: TrackingConfig, paths: ForgePaths) -> TrackingSpec | None:
    """Where this job's metrics also go: its own TensorBoard folder (`<kind>-<id>`) and an MLflow
    run named after it, or None when `[tracking]` asks for neither or the kind has no metrics."""
    if job.kind not in TRACKED_KINDS or not (tracking.tensorboard or tracking.mlflow_uri):
        return None
    tensorboard = None
    if tracking.tensorboard:
        root = Path(tracking.tensorboard_dir).expanduser() if tracking.tensorboard_dir else None
        tensorboard = str((root or paths.data_dir / "tensorboard") / f"{job.kind}-{job.id}")
    return TrackingSpec(
        run_name=f"{job.name} ({job.id})" if job.name else job.id,
        tensorboard_dir=tensorboard,
        mlflow_uri=tracking.mlflow_uri or None,
        mlflow_experiment=tracking.mlflow_experiment,
    )
