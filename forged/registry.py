"""The model registry: what every model is, where it came from, how it scored, where it serves.

The store holds the records (jobs' artifacts become models); this adds what a person needs to
choose one: base models found on disk, each adapter's eval metrics and the source and commit it
covers, and for Ollama tags what they were built from and which one a source's alias serves.
It also plans deploys (the tag, the mode, the Ollama base) and rolls an alias back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.gguf_import import imported_from
from engine.ollama_api import shown_host
from forge_api.config import Config
from forge_api.deploy_mode import deploy_mode, is_dora
from forge_api.engine_events import ArtifactEvent
from forge_api.model_data import ModelData
from forge_api.paths import ForgePaths
from forge_api.run_dir import RunDir
from forge_api.schema import Job, Model
from forged.model_catalog import base_id, candidate_folders, discover, hf_id
from forged.store import Store

# Artifacts that are models, and the registry kind each becomes.
MODEL_ARTIFACTS = {
    "base-model": "base",
    "adapter": "adapter",
    "merged-model": "merged",
    "ollama-model": "ollama",
}


class RegistryError(ValueError):
    """A request the registry cannot carry out; the message says why and what to do."""


class UnknownModel(RegistryError):
    """No base model answers to a reference (it may yet be built or imported)."""


def slug(name: str) -> str:
    """A name Ollama accepts as a model name: lower case letters, digits, `.`, `_`, `-`."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return cleaned[:60] or "model"


def alias_of(tag: str) -> str | None:
    """The moving alias of a numbered tag: `forge-x:3` → `forge-x:latest`."""
    name, _, version = tag.partition(":")
    return None if version in ("", "latest") else f"{name}:latest"


def source_alias(source_name: str) -> str:
    """The Ollama name that serves a source's current model: `forge-<source>:latest`."""
    return f"forge-{slug(source_name)}:latest"


def eval_scores(report: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """An eval job's eval.json, by candidate, with the candidate prefix taken off the names."""
    return {
        who: {name.removeprefix(f"{who}_"): value for name, value in scores.items()}
        for who, scores in report.items()
    }


def parameter_value(text: str) -> Any:
    """A Modelfile parameter from the config's string: a number when it is one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class ModelRegistry:
    def __init__(self, store: Store, paths: ForgePaths, config: Config, accelerator: str) -> None:
        self.store = store
        self.paths = paths
        self.config = config
        self.accelerator = accelerator

    @property
    def host(self) -> str:
        return shown_host(self.config.ollama.host or None)

    # ---- listing -------------------------------------------------------------------------------

    async def listing(self, kinds: Sequence[str] | None) -> list[Model]:
        stored = self.store.list_models(None)
        models = [m for m in stored if m.kind != "base"]
        if not kinds or "base" in kinds:
            settings = self.config.models
            models += await asyncio.to_thread(
                discover,
                self.paths.models_dir,
                settings.folders,
                settings.hf_cache,
                self.accelerator,
                stored,
            )
        wanted = [m for m in models if not kinds or m.kind in kinds]
        return sorted(wanted, key=lambda m: m.created_at, reverse=True)

    def resolve_base(self, ref: str) -> str:
        """The folder of a base model from any reference `forge models ls` shows: a path, a
        registry id or a unique prefix of one, a name, a folder name, a Hugging Face cache id.
        The one function every job kind and config key that asks for a model goes through;
        RegistryError says what was not found, or which models a short id could mean."""
        path = Path(ref).expanduser()
        if path.is_absolute():
            if path.is_dir():
                return str(path.resolve())
            raise UnknownModel(f"{ref} is not a folder")
        settings = self.config.models
        names: dict[str, set[str]] = {}
        for folder in candidate_folders(self.paths.models_dir, settings.folders, settings.hf_cache):
            key = str(folder.resolve())
            names[key] = {folder.name, base_id(folder), hf_id(folder) or folder.name}
        for m in self.store.list_models(["base", "merged"]):
            if m.path and Path(m.path).is_dir():
                names.setdefault(m.path, set()).update({m.id, m.name})
        exact = sorted(p for p, known in names.items() if ref in known)
        if not exact and len(ref) >= 4:  # a short id: a prefix of an id, not of a name
            ids = {
                p: {n for n in known if n.startswith(("base-", "mdl-"))}
                for p, known in names.items()
            }
            exact = sorted(
                p
                for p, known in ids.items()
                if any(n.startswith((ref, f"base-{ref}", f"mdl-{ref}")) for n in known)
            )
        if len(exact) == 1:
            return exact[0]
        if exact:
            raise RegistryError(f"{ref!r} could be any of: {', '.join(exact)}; give more of it")
        raise UnknownModel(
            f"no base model {ref!r}: not a folder, a registry id, or a name `forge models ls` "
            f"shows (models dir {self.paths.models_dir}, [models] folders, the HF cache); "
            "`forge models import FILE.gguf` brings one in"
        )

    def deployments(self, alias: str) -> list[Model]:
        """The Ollama tags deployed under `alias`, oldest first."""
        tags = [m for m in self.store.list_models(["ollama"]) if m.data.alias == alias]
        return sorted(tags, key=lambda m: m.created_at)

    def current(self, alias: str) -> Model | None:
        tags = self.deployments(alias)
        return next((m for m in tags if m.data.current), tags[-1] if tags else None)

    # ---- what finished jobs add ----------------------------------------------------------------

    def on_job_finished(self, job: Job) -> None:
        if job.status != "completed":
            return
        if job.kind == "train":
            self._note_training(job)
        elif job.kind == "eval" and job.params.get("adapter"):
            self._note_eval(job)
        elif job.kind == "deploy":
            self._note_deploy(job)

    def record_artifact(self, job_id: str, artifact: ArtifactEvent) -> None:
        """A job made a model (a base, an adapter, a merged model, an Ollama tag): register it
        under the name it was given, with what the engine said about it."""
        kind = MODEL_ARTIFACTS.get(artifact.kind)
        if kind is None:
            return  # an eval report and the like: recorded on the job only
        self.store.upsert_model(
            kind,
            artifact.name or Path(artifact.path).name,
            artifact.path,
            base=artifact.base,
            job_id=job_id,
            data=ModelData.model_validate(artifact.extras()),
        )

    def adapter_at(self, path: str) -> Model | None:
        here = Path(path).resolve()
        for candidate in (here, here / "adapter"):
            found = self.store.find_model("adapter", str(candidate))
            if found is not None:
                return found
        return None

    def _note_training(self, job: Job) -> None:
        origin = ModelData(dataset=job.params.get("dataset"))
        if job.mission_id:
            mission = self.store.get_mission(job.mission_id)
            origin.mission_id = mission.id
            origin.commit = mission.data.head
            origin.dataset_id = mission.data.dataset_id
            if mission.source_id:
                origin.source_id = mission.source_id
                with contextlib.suppress(KeyError):  # the source may be removed since
                    origin.source = self.store.get_source(mission.source_id).name
        for m in self.store.list_models(["adapter"]):
            if m.job_id == job.id:
                self.store.update_model_data(m.id, origin)

    def _note_eval(self, job: Job) -> None:
        adapter = self.adapter_at(str(job.params["adapter"]))
        report = RunDir.of(job.run_dir).eval_report
        if adapter is None or not report.exists():
            return
        scores = eval_scores(json.loads(report.read_text(encoding="utf-8")))
        self.store.update_model_data(adapter.id, ModelData(eval=scores, eval_job=job.id))

    def _note_deploy(self, job: Job) -> None:
        tag = self.store.find_model("ollama", str(job.params.get("tag")))
        if tag is None:
            return
        extra = ModelData(deploy_job=job.id)
        adapter = self.adapter_at(str(job.params["adapter"])) if job.params.get("adapter") else None
        if adapter is not None:
            extra.adapter_model_id = adapter.id
            extra.eval = adapter.data.eval or {}
            # What the tag covers is what its adapter covers.
            for key in ("source_id", "source", "commit", "mission_id"):
                if value := getattr(adapter.data, key):
                    setattr(extra, key, value)
        self.store.update_model_data(tag.id, extra)
        if tag.data.alias:
            self._mark_current(tag.data.alias, tag.id)

    def _mark_current(self, alias: str, model_id: str) -> None:
        for m in self.deployments(alias):
            if bool(m.data.current) != (m.id == model_id):
                self.store.update_model_data(m.id, ModelData(current=m.id == model_id))

    # ---- deploying -----------------------------------------------------------------------------

    def ollama_base_for(self, base: str | None) -> str | None:
        """The Ollama model this base was imported from, else the one named in [ollama] bases
        for it (by path, folder or HF id)."""
        if not base:
            return None
        imported = imported_from(Path(base)).get("ollama_model")
        if imported:  # imported from this Ollama model: the adapter goes back onto it
            return str(imported)
        bases = self.config.ollama.bases
        for key in (base, Path(base).name, hf_id(Path(base))):
            if key and key in bases:
                return bases[key]
        return None

    def next_tag(self, name: str) -> str:
        numbers = [
            int(m.name.partition(":")[2])
            for m in self.store.list_models(["ollama"])
            if m.name.startswith(f"{name}:") and m.name.partition(":")[2].isdigit()
        ]
        return f"{name}:{max(numbers, default=0) + 1}"

    def plan_deploy(self, model: Model, tag: str | None = None) -> dict[str, Any]:
        """The params of a deploy job for an adapter or merged model from the registry."""
        if model.kind not in ("adapter", "merged") or not model.path:
            raise RegistryError(
                f"{model.id} is a {model.kind} model; deploy an adapter or a merged model"
            )
        if not Path(model.path).exists():
            raise RegistryError(f"{model.id}: its files are gone from {model.path}")
        alias = source_alias(model.data.source or model.name)
        tag = tag or self.next_tag(alias.partition(":")[0])
        settings = self.config.ollama
        params: dict[str, Any] = {
            "base_model": model.base or model.path,
            "tag": tag,
            "alias": alias_of(tag),
            "host": self.host,
            "system": settings.system or None,
            "parameters": {k: parameter_value(v) for k, v in settings.parameters.items()},
        }
        if model.kind == "merged":
            return params | {"merged": model.path, "mode": "merged"}
        ollama_base = self.ollama_base_for(model.base)
        mode, _why = deploy_mode(
            "auto", merged=False, ollama_base=ollama_base, dora=is_dora(Path(model.path))
        )
        return params | {"adapter": model.path, "ollama_base": ollama_base, "mode": mode}

    async def reachable(self) -> str | None:
        """None when Ollama answers at the configured host within 3 s; else why not."""
        from engine.ollama_api import client, talking_to

        def ask() -> None:
            with talking_to(self.host, "checking that it runs"):
                client(self.host, timeout=3).list()

        try:
            await asyncio.to_thread(ask)
        except EngineError as exc:
            return str(exc)
        return None

    # ---- rolling back --------------------------------------------------------------------------

    async def rollback(self, alias: str) -> Model:
        """Point `alias` back at the tag deployed before the one it serves now."""
        tags = self.deployments(alias)
        current = self.current(alias)
        if current is None:
            raise RegistryError(f"nothing has been deployed as {alias} yet")
        before = tags[: tags.index(current)]
        if not before:
            raise RegistryError(
                f"{alias} serves {current.name}, its first deployment: there is nothing older "
                "to roll back to"
            )
        previous = before[-1]
        await asyncio.to_thread(self._copy, previous.name, alias)
        self._mark_current(alias, previous.id)
        return self.store.get_model(previous.id)

    def _copy(self, tag: str, alias: str) -> None:
        from engine.ollama_api import NotFound, client, talking_to

        try:
            with talking_to(self.host, f"pointing {alias} at {tag}"):
                client(self.host).copy(tag, alias)
        except NotFound as exc:
            raise RegistryError(
                f"{tag} is no longer in the Ollama at {self.host} ({exc}); {alias} is unchanged"
            ) from None
        except EngineError as exc:
            raise RegistryError(f"{exc}; {alias} is unchanged") from None
