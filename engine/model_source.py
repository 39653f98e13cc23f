"""Finding a base model or an adapter from what a person typed: a folder, a name under the
models dir, a Hugging Face cache id (never downloaded), or a train job's run dir."""

from __future__ import annotations

from pathlib import Path

from engine.errors import EngineError


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
