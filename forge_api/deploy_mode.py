"""Which way an adapter goes to Ollama: the one rule, used by the engine that deploys, the
registry that plans a deploy and the runner that counts what holds the accelerator.

`adapter` uploads only the adapter, as the GGUF LoRA adapter llama.cpp's converter writes, onto
the Ollama model that is its base (small, nothing to compute here). Ollama takes a GGUF adapter
as it is (`server/create.go`), for every architecture llama.cpp loads adapters for; its own
safetensors adapter converter, which forge no longer uses, takes only llama and gemma2 bases
(`convert/convert.go`, `ConvertAdapter`). `merged` folds the adapter into its base on this
machine and uploads the whole model (it loads weights, so it holds the accelerator). `auto`
takes `adapter` where it can: an Ollama base is named, and the adapter is not DoRA (a GGUF
adapter has no place for DoRA's magnitude vector). Pure and light: the daemon imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

Mode = Literal["adapter", "merged"]


class ModeError(ValueError):
    """The asked-for mode cannot work for this adapter; the message says what to do."""


def deploy_mode(
    asked: str, *, merged: bool, ollama_base: str | None, dora: bool
) -> tuple[Mode, str]:
    """The mode a deploy uses and why, in words for its log; ModeError where `asked` cannot
    work."""
    if merged:
        return "merged", "a merged model is uploaded whole"
    if asked == "adapter":
        if not ollama_base:
            raise ModeError(
                "params.ollama_base: mode adapter needs the Ollama model that is this "
                "adapter's base; name it in config.toml under [ollama] bases"
            )
        if dora:
            raise ModeError(
                "a DoRA adapter cannot go to Ollama as an adapter: a GGUF adapter has no place "
                'for its magnitude vector. Deploy with mode "merged" to upload it folded into '
                "its base instead"
            )
        return "adapter", f"deploying the adapter onto the Ollama model {ollama_base}"
    if asked == "merged":
        return "merged", "merging the adapter and uploading the whole model, as asked"
    if ollama_base and not dora:
        return "adapter", f"deploying the adapter onto the Ollama model {ollama_base}"
    why = (
        "a DoRA adapter has no GGUF adapter form"
        if ollama_base
        else "no Ollama model is named as the same base ([ollama] bases)"
    )
    return "merged", f"merging the adapter and uploading the whole model: {why}"


def merges_here(params: dict[str, object]) -> bool:
    """Whether a deploy job's params may make it merge on this machine (and so hold the
    accelerator). Only an explicit `adapter` deploy surely does not: `auto` depends on the
    base's architecture, read by the engine, so it is counted as merging."""
    if params.get("merged"):
        return False  # a merged folder is uploaded as it is
    return params.get("mode", "auto") != "adapter"


def is_dora(adapter: Path) -> bool:
    """Whether the adapter folder is a DoRA adapter (PEFT's `use_dora`); False if unreadable."""
    try:
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(config, dict) and config.get("use_dora"))
