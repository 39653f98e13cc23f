"""Which backend trains here: `auto` picks the fastest one this machine can run and says why;
an explicit choice that cannot run here fails before anything loads, saying what is missing."""

from __future__ import annotations

import importlib.util
import platform
import sys

from engine.errors import EngineError
from forge_api.jobs import TrainParams


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def choose_backend(p: TrainParams) -> tuple[str, str]:
    """(backend, reason); EngineError when the asked-for backend or method cannot run here."""
    cuda = cuda_available()
    if p.method == "qlora" and not cuda:
        raise EngineError(
            "params.method: qlora loads the base in 4-bit with bitsandbytes, which needs an "
            "NVIDIA GPU with CUDA; this machine has none (use lora, dora or pissa)"
        )
    if p.backend == "unsloth":
        if not cuda:
            raise EngineError(
                "params.backend: unsloth needs an NVIDIA GPU with CUDA; torch sees none"
            )
        if not has_module("unsloth"):
            raise EngineError(
                "params.backend: unsloth is not installed (pip install 'ai-forge[unsloth]')"
            )
        if p.method in ("dora", "pissa"):
            raise EngineError(f"params.backend: unsloth does not train {p.method}; use peft")
        return "unsloth", "asked for"
    if p.backend == "mlx":
        if not has_module("mlx_lm"):
            raise EngineError(
                "params.backend: mlx-lm is not installed (pip install 'ai-forge[mlx]')"
            )
        if p.method != "lora":
            raise EngineError(f"params.backend: the mlx backend trains lora, not {p.method}")
        if not (sys.platform == "darwin" and platform.machine() == "arm64"):
            return "mlx", (
                "asked for; off Apple silicon mlx runs its CPU build, many times slower than "
                "peft here (auto never picks it on this machine)"
            )
        return "mlx", "asked for"
    if p.backend == "peft":
        return "peft", "asked for"
    if cuda and has_module("unsloth") and p.method in ("lora", "qlora"):
        return "unsloth", "CUDA and unsloth are here: unsloth's kernels train fastest"
    if cuda:
        why = (
            "unsloth is not installed"
            if not has_module("unsloth")
            else f"unsloth has no {p.method}"
        )
        return "peft", f"CUDA is here but {why}: transformers + PEFT on the GPU"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        if has_module("mlx_lm") and p.method == "lora":
            return "mlx", "Apple silicon with mlx-lm: MLX trains fastest there"
        return "peft", "Apple silicon: transformers + PEFT on MPS"
    return "peft", "no GPU here: transformers + PEFT on the CPU"
