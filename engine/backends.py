"""Which backend trains here: `auto` picks the fastest one this machine can run and says why;
an explicit choice that cannot run here fails before anything loads, saying what is missing."""

from __future__ import annotations

from engine.errors import EngineError
from forge_api.backend_rules import Machine, auto_backend, train_problem
from forge_api.jobs import TrainParams


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
    """(backend, reason); EngineError when the asked-for backend or method cannot run here
    (the rule is `forge_api.backend_rules`, which the daemon also checks at submit)."""
    machine = Machine.here(cuda=cuda_available())
    if why := train_problem(p.backend, p.method, machine):
        raise EngineError(why)
    if p.backend == "auto":
        return auto_backend(p.method, machine)
    if p.backend == "mlx" and not machine.apple_silicon:
        return "mlx", (
            "asked for; off Apple silicon mlx runs its CPU build, many times slower than "
            "peft here (auto never picks it on this machine)"
        )
    return p.backend, "asked for"
