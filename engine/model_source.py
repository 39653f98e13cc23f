"""Finding a base model or an adapter from what a person typed: a folder, a name under the
models dir, a Hugging Face cache id (never downloaded), or a train job's run dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.errors import EngineError

DEFAULT_BASE = "tiny-llama"
TRAINING_RECORD = "forge_train.json"
"""Written into each trained adapter: the base and max_seq_len it was trained with, so eval,
merge, infer and deploy default to the same ones."""


def resolve_base(ref: str, models_dir: str, key: str = "base_model") -> Path:
    path = Path(ref).expanduser()
    if path.is_dir():
        return path.resolve()
    named = Path(models_dir) / ref
    if "/" not in ref and named.is_dir():
        return named
    if "/" in ref and not path.is_absolute():
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(ref, local_files_only=True))
        except Exception:
            pass
    raise EngineError(
        f"params.{key}: {ref!r} is not a model folder, not a model under {models_dir}, "
        "and not in the local Hugging Face cache (nothing is downloaded)"
    )


def resolve_adapter(ref: str, key: str = "adapter") -> Path:
    path = Path(ref).expanduser()
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").exists():
            return candidate.resolve()
    raise EngineError(f"params.{key}: no adapter (adapter_config.json) at {path}")


def training_record(adapter: Path) -> dict[str, Any]:
    """What the train job recorded in an adapter folder; PEFT's own config as a fallback."""
    record: dict[str, Any] = {}
    for name in ("adapter_config.json", TRAINING_RECORD):
        try:
            data = json.loads((adapter / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            record |= data
    if "base_model" not in record and record.get("base_model_name_or_path"):
        record["base_model"] = record["base_model_name_or_path"]
    return record


def base_for(ref: str | None, adapter: str | None, models_dir: str) -> Path:
    """The base model a job runs on: as asked, else the one the adapter was trained on, else
    the tiny local model."""
    if ref:
        return resolve_base(ref, models_dir)
    if adapter:
        trained_on = training_record(resolve_adapter(adapter)).get("base_model")
        if isinstance(trained_on, str) and trained_on:
            return resolve_base(trained_on, models_dir, key="adapter (its base model)")
    return resolve_base(DEFAULT_BASE, models_dir)
