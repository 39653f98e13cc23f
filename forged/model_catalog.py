"""Base models found on disk: the models dir, configured folders and the Hugging Face cache.

Each is described from its config.json and safetensors headers (no weights are read, nothing is
imported): architecture, parameter count, size on disk, and whether each backend can train it
on this machine, with the reason when it cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.model_folder import inspect_model_folder
from forge_api.backend_rules import BACKENDS, Machine, backend_problem
from forge_api.model_data import ModelData
from forge_api.schema import Model


def hf_cache_dir() -> Path:
    """Where huggingface_hub keeps downloads, by its own environment variables."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home) / "hub"


def candidate_folders(models_dir: Path, folders: list[str], hf_cache: bool) -> list[Path]:
    """Every folder that may hold a model: a listed folder itself, or its subfolders."""
    found: list[Path] = []
    for root in [models_dir, *(Path(f).expanduser() for f in folders)]:
        if (root / "config.json").is_file():
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(p for p in root.iterdir() if (p / "config.json").is_file()))
    cache = hf_cache_dir()
    if hf_cache and cache.is_dir():
        for repo in sorted(cache.glob("models--*")):
            snapshots = sorted(
                (repo / "snapshots").glob("*/config.json"), key=lambda f: f.stat().st_mtime
            )
            if snapshots:
                found.append(snapshots[-1].parent)
    return found


def base_id(folder: Path) -> str:
    """The registry id of a base model found on disk: stable for its resolved path."""
    return "base-" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]


def hf_id(folder: Path) -> str | None:
    """`org/name` for a folder in the Hugging Face cache."""
    for part in folder.parts:
        if part.startswith("models--"):
            return part.removeprefix("models--").replace("--", "/")
    return None


def trainable(model_type: str | None, accelerator: str) -> dict[str, dict[str, Any]]:
    """Per backend: whether it can train this architecture here, and why (not)."""
    machine = Machine.here(cuda=accelerator == "cuda")
    kind = model_type or "unknown"
    fine = {
        "peft": "transformers + PEFT",
        "unsloth": "CUDA and Unsloth are here",
        "mlx": "mlx-lm has this architecture",
    }
    out: dict[str, dict[str, Any]] = {}
    for backend in BACKENDS:
        why = backend_problem(backend, machine, model_type=kind)
        out[backend] = {"ok": why is None, "why": why or fine[backend]}
    return out


def describe(folder: Path, accelerator: str) -> dict[str, Any]:
    """What the registry says about one base model folder; `problem` when it is unusable."""
    try:
        info = inspect_model_folder(folder)
    except (EngineError, OSError, json.JSONDecodeError, KeyError, ValueError) as exc:
        return {"problem": str(exc)}
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    return info | {
        "size_bytes": size,
        "hf_id": hf_id(folder),
        "trainable": trainable(info.get("model_type"), accelerator),
    }


def discover(
    models_dir: Path, folders: list[str], hf_cache: bool, accelerator: str, known: list[Model]
) -> list[Model]:
    """Base models on disk; those the store already holds keep their id and record."""
    stored = {str(Path(m.path).resolve()): m for m in known if m.kind == "base" and m.path}
    out: list[Model] = []
    for folder in candidate_folders(models_dir, folders, hf_cache):
        key = str(folder.resolve())
        details = describe(folder, accelerator)
        if key in stored:
            m = stored.pop(key)
            out.append(_with_details(m, details))
            continue
        out.append(
            Model(
                id=base_id(folder),
                kind="base",
                name=hf_id(folder) or folder.name,
                path=key,
                created_at=folder.stat().st_mtime,
                data=ModelData.model_validate(details),
            )
        )
    # Stored base models elsewhere (a folder a prepare-model job verified), or gone from disk.
    for m in stored.values():
        assert m.path is not None
        here = Path(m.path)
        details = describe(here, accelerator) if here.is_dir() else {"problem": "missing"}
        out.append(_with_details(m, details))
    return out


def _with_details(model: Model, details: dict[str, Any]) -> Model:
    """A stored base model with what its folder says now."""
    return model.model_copy(
        update={"data": ModelData.model_validate(model.data.changes() | details)}
    )
