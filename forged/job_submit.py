"""The one way a job enters the queue, whoever asks: a client's `jobs.submit`, a mission's step
(train at approval, eval, deploy, a retry), a deploy of a model, a calibration.

Every check at submit lives here, so none is skipped by a path that does not go through the
socket: the params are validated for their kind; ids a person may pass for paths are resolved
(a dataset id, a train job for its adapter, any base model reference `forge models ls` shows);
a method or backend this machine cannot run is refused now, not when its turn comes; a dataset
must be in the data dir. A refusal is an `RpcError` naming the param (`SubmitRefused`, or the
params' validation error), which the socket answers with and a mission's approval answers
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.data import DataError, dataset_files
from forge_api.backend_rules import Machine, data_parallel_problem, train_problem
from forge_api.jobs import UnknownKind, parse_params
from forge_api.paths import ForgePaths
from forge_api.protocol import INVALID_PARAMS, NOT_FOUND, UNSUPPORTED
from forge_api.run_dir import RunDir
from forge_api.schema import Job
from forged.engine_command import TooFewDevices, processes
from forged.hardware import Hardware
from forged.registry import ModelRegistry, RegistryError, UnknownModel
from forged.rpc import RpcError, lookup, params_error
from forged.runner import JobRunner
from forged.store import Store


class SubmitRefused(RpcError):
    """A job that must not be queued: the one-line reason, the param it is about (`params.x`),
    and the JSON-RPC error code a client gets it with."""

    def __init__(
        self, message: str, param: str, code: int = INVALID_PARAMS, value: Any = None
    ) -> None:
        data: dict[str, Any] = {"param": param}
        if value is not None:
            data["value"] = value
        super().__init__(code, message, data)
        self.param = param


@dataclass
class JobSubmitter:
    """Checks a job and queues it (`JobRunner.submit`)."""

    store: Store
    runner: JobRunner
    models: ModelRegistry
    paths: ForgePaths
    hardware: Hardware

    def check(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """The params as the job will get them (validated, ids resolved); SubmitRefused if the
        job cannot run here."""
        try:
            parsed = parse_params(kind, params)
        except UnknownKind as exc:
            raise SubmitRefused(str(exc), "kind", UNSUPPORTED, kind) from exc
        except ValidationError as exc:
            raise params_error(exc, prefix="params") from exc
        values = parsed.model_dump(mode="json")
        if kind == "train":
            self._refuse_what_cannot_train_here(values)
        self._resolve_refs(kind, values)
        for key in ("dataset", "general_dataset"):
            self._refuse_outside_data_dir(values, key)
        return values

    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        name: str | None = None,
        mission_id: str | None = None,
        not_before: float | None = None,
    ) -> Job:
        """Check the job, then queue it."""
        values = self.check(kind, params)
        return self.runner.submit(
            kind, name or default_name(kind, values), values, mission_id, not_before
        )

    def _resolve_refs(self, kind: str, values: dict[str, Any]) -> None:
        base = values.get("base_model")
        if isinstance(base, str):
            try:
                values["base_model"] = self.models.resolve_base(base)
            except UnknownModel as exc:
                # Not on disk yet: fine while a prepare-model job that may build it is waiting,
                # else refused now rather than failing when the job's turn comes.
                waiting = ["queued", "running"]
                if not self.store.list_jobs(status=waiting, kind=["prepare-model"])[1]:
                    raise SubmitRefused(f"params.base_model: {exc}", "params.base_model") from None
            except RegistryError as exc:
                raise SubmitRefused(f"params.base_model: {exc}", "params.base_model") from None
        for key in ("dataset", "general_dataset"):
            ref = values.get(key)
            if isinstance(ref, str) and ref.startswith("ds-"):
                values[key] = lookup(self.store.get_dataset, "dataset", ref, f"params.{key}").path
        path = values.get("path")
        local = isinstance(path, str) and ":" not in path.split("/")[0]  # not hf: or ollama:
        if kind == "prepare-model" and local and not Path(str(path)).exists():
            raise SubmitRefused(
                f"params.path: {path}: no such model folder or .gguf file on the daemon's machine",
                "params.path",
            )
        for key in ("adapter", "previous_adapter", "init_adapter"):
            ref = values.get(key)
            if isinstance(ref, str) and ref.startswith("job-"):
                job_id = self.store.resolve_job_id(ref)
                if job_id is None:
                    raise SubmitRefused(f"no job {ref!r}", f"params.{key}", NOT_FOUND)
                values[key] = str(RunDir.of(self.store.get_job(job_id).run_dir).adapter)

    def _refuse_outside_data_dir(self, values: dict[str, Any], key: str) -> None:
        """Jobs read datasets only from the data dir (symlinks followed), so a request cannot
        make the daemon read and train on an arbitrary file; files from elsewhere come in
        through datasets.import, which checks every line on the way."""
        ref = values.get(key)
        if not isinstance(ref, str):
            return
        param = f"params.{key}"
        root = self.paths.datasets_dir.resolve()
        path = Path(ref)
        if path.is_absolute() and path.resolve().is_relative_to(root):
            if path.is_dir():
                # A folder's own files too: a link in it must not lead out (the engine checks
                # again as it reads, since the folder may change before the job starts).
                try:
                    dataset_files(path, inside=root)
                except DataError as exc:
                    raise SubmitRefused(f"{param}: {exc}", param) from None
            return
        if path.is_absolute() and not path.exists():
            raise SubmitRefused(
                f"{param}: {ref}: no such file or folder on the daemon's machine",
                param,
                value=ref,
            )
        raise SubmitRefused(
            f"dataset {ref} is outside the data dir ({root}); import it first with "
            f"`forge datasets import {ref}` (datasets.import) and pass its ds- id",
            param,
            value=ref,
        )

    def _refuse_what_cannot_train_here(self, values: dict[str, Any]) -> None:
        """A method or backend this machine cannot run (QLoRA or Unsloth without CUDA, MLX
        without mlx-lm), or more GPUs than it has, by the rule the engine itself applies. Jobs
        sent to a Ray cluster are judged there instead: its workers run them."""
        on_ray = self.runner.config.executor == "ray"
        try:
            n = processes("train", values, None if on_ray else self.runner.gpus)
        except TooFewDevices as exc:
            raise SubmitRefused(str(exc), "params.devices") from None
        if n > 1 and (problem := data_parallel_problem(str(values["backend"]))):
            raise SubmitRefused(problem, "params.devices")
        if on_ray:
            return
        accelerator = self.hardware.accelerator
        cuda = accelerator.kind == "cuda" or Path("/proc/driver/nvidia").exists()
        why = train_problem(str(values["backend"]), str(values["method"]), Machine.here(cuda=cuda))
        if why:
            raise SubmitRefused(why, why.split(":", 1)[0])


def default_name(kind: str, params: dict[str, Any]) -> str:
    """A job's name where its submitter gave none."""
    if kind == "prepare-model":
        return f"prepare {params.get('path') or params.get('name') or 'tiny-llama'}"
    if kind == "train":
        return f"train {params['method']} on {Path(str(params['dataset'])).name}"
    if kind == "merge":
        return f"merge into {params['name']}"
    return f"{kind} {Path(str(params.get('adapter') or params.get('base_model'))).name}"
