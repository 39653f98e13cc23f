"""Which way an adapter goes to Ollama: the one rule, used by the engine that deploys, the
registry that plans a deploy and the runner that counts what holds the accelerator.

`adapter` uploads only the adapter onto an Ollama model that is the same base (small, nothing
to compute here); `merged` folds the adapter into its base on this machine and uploads the whole
model (it loads weights, so it holds the accelerator). `auto` takes `adapter` where Ollama can
apply one, else `merged`. Pure and light: the daemon imports it.
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["adapter", "merged"]

# Architectures (config.json `model_type`) Ollama applies safetensors LoRA adapters to, from its
# import guide. Any other base is merged here and uploaded whole.
ADAPTER_MODEL_TYPES = frozenset({"llama", "mistral", "mixtral", "gemma", "gemma2"})


class ModeError(ValueError):
    """The asked-for mode cannot work for this adapter; the message says what to do."""


def deploy_mode(
    asked: str, *, merged: bool, ollama_base: str | None, model_type: str | None
) -> tuple[Mode, str]:
    """The mode a deploy uses and why, in words for its log; ModeError where `asked` cannot
    work. `model_type` None: the base's architecture is not known (yet)."""
    if merged:
        return "merged", "a merged model is uploaded whole"
    takes_adapters = model_type in ADAPTER_MODEL_TYPES
    if asked == "adapter":
        if not ollama_base:
            raise ModeError(
                "params.ollama_base: mode adapter needs the Ollama model that is this "
                "adapter's base; name it in config.toml under [ollama] bases"
            )
        if model_type is not None and not takes_adapters:
            raise ModeError(
                f"Ollama cannot apply adapters to {model_type} models; it takes them for "
                f'{", ".join(sorted(ADAPTER_MODEL_TYPES))}. Deploy with mode "merged" to '
                "upload the adapter folded into its base instead"
            )
        return "adapter", f"deploying the adapter onto the Ollama model {ollama_base}"
    if asked == "merged":
        return "merged", "merging the adapter and uploading the whole model, as asked"
    if ollama_base and takes_adapters:
        return "adapter", f"deploying the adapter onto the Ollama model {ollama_base}"
    why = (
        f"Ollama takes no adapters for {model_type or 'this'} models"
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
