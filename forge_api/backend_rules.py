"""Which training backend can train what, on which machine: the one rule.

The engine uses it to pick a backend (`backend = "auto"`) or refuse the one asked for; the
registry uses it for each base model's `trainable` verdicts; the daemon uses it to refuse at
submit a train job this machine cannot run (QLoRA or Unsloth without CUDA, MLX without mlx-lm),
rather than when the job's turn comes. Pure and light: what the machine has is given to it
(`Machine`), found by each caller its own way (torch in the engine, nvidia-smi in the daemon).
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

BACKENDS = ("peft", "unsloth", "mlx")

# Architectures (config.json `model_type`) Unsloth's fast path covers.
UNSLOTH_MODEL_TYPES = frozenset(
    {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi3", "granite"}
)
UNSLOTH_METHODS = frozenset({"lora", "qlora"})
MLX_METHODS = frozenset({"lora"})


@dataclass(frozen=True)
class Machine:
    """What decides which backends run here."""

    cuda: bool
    apple_silicon: bool
    unsloth: bool
    """Unsloth is installed."""
    mlx_lm: bool
    """mlx-lm is installed."""

    @classmethod
    def here(cls, cuda: bool) -> Machine:
        """This machine, with CUDA as the caller found it (installed packages looked up, not
        imported)."""
        return cls(
            cuda=cuda,
            apple_silicon=sys.platform == "darwin" and platform.machine() == "arm64",
            unsloth=importlib.util.find_spec("unsloth") is not None,
            mlx_lm=importlib.util.find_spec("mlx_lm") is not None,
        )


def data_parallel_problem(backend: str) -> str | None:
    """Why `backend`, asked for by name, cannot train one job on several GPUs, or None (`auto`
    trains on several with peft)."""
    if backend == "mlx":
        return (
            "params.devices: mlx trains on one Apple silicon device; several GPUs need CUDA "
            "and backend peft (or auto)"
        )
    if backend == "unsloth":
        return "params.devices: unsloth trains on one GPU; use backend peft (or auto) with devices"
    return None


def method_problem(method: str, machine: Machine) -> str | None:
    """Why this machine cannot train with `method` at all (whatever the backend), or None."""
    if method == "qlora" and not machine.cuda:
        return (
            "qlora loads the base in 4-bit with bitsandbytes, which needs an NVIDIA GPU with "
            "CUDA; this machine has none (use lora, dora or pissa)"
        )
    return None


def mlx_knows(model_type: str) -> bool:
    """Whether the installed mlx-lm has this architecture (a module of that name)."""
    spec = importlib.util.find_spec("mlx_lm")
    if spec is None or spec.origin is None:
        return False
    return (Path(spec.origin).parent / "models" / f"{model_type}.py").exists()


def backend_problem(
    backend: str,
    machine: Machine,
    *,
    method: str | None = None,
    model_type: str | None = None,
) -> str | None:
    """Why `backend` cannot train here (this method, this architecture, where given), in words
    that follow the backend's name; None when it can."""
    if backend == "unsloth":
        if not machine.cuda:
            return "needs an NVIDIA GPU with CUDA"
        if not machine.unsloth:
            return "is not installed (pip install 'ai-forge[unsloth]')"
        if method is not None and method not in UNSLOTH_METHODS:
            return f"does not train {method}; use peft"
        if model_type is not None and model_type not in UNSLOTH_MODEL_TYPES:
            return f"does not cover {model_type} models"
    elif backend == "mlx":
        if not machine.mlx_lm:
            return "needs mlx-lm, which is not installed (pip install 'ai-forge[mlx]')"
        if method is not None and method not in MLX_METHODS:
            return f"trains lora, not {method}"
        if model_type is not None and not mlx_knows(model_type):
            return f"has no {model_type} architecture in the installed mlx-lm"
    return None


def auto_backend(method: str, machine: Machine) -> tuple[str, str]:
    """The fastest backend for `method` here, and why, for the job's log."""
    if machine.cuda:
        if backend_problem("unsloth", machine, method=method) is None:
            return "unsloth", "CUDA and unsloth are here: unsloth's kernels train fastest"
        why = "unsloth is not installed" if not machine.unsloth else f"unsloth has no {method}"
        return "peft", f"CUDA is here but {why}: transformers + PEFT on the GPU"
    if machine.apple_silicon:
        if backend_problem("mlx", machine, method=method) is None:
            return "mlx", "Apple silicon with mlx-lm: MLX trains fastest there"
        return "peft", "Apple silicon: transformers + PEFT on MPS"
    return "peft", "no GPU here: transformers + PEFT on the CPU"


def train_problem(backend: str, method: str, machine: Machine) -> str | None:
    """Why a train job with these params cannot run here, naming the param; None when it can."""
    if why := method_problem(method, machine):
        return f"params.method: {why}"
    if backend != "auto" and (why := backend_problem(backend, machine, method=method)):
        return f"params.backend: {backend} {why}"
    return None
