"""Data-parallel training: one engine process per GPU, each on its share of every step's rows,
their gradients summed before each optimizer step (what DDP does; LoRA's trainable weights are
small enough to be sent as one flat tensor a step).

The processes are started by accelerate's launcher (`accelerate launch --multi_gpu`, which runs
torch's elastic launcher), so each finds its place in torchrun's environment: `RANK`,
`WORLD_SIZE`, `LOCAL_RANK`. Alone (no such environment) everything here is a no-op, so the
training loop has one shape for one process and for several.

Only rank 0 speaks for the job (its events are the job's one stream), evaluates, and writes
checkpoints and the adapter; the others only report an error, prefixed with their rank.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

COLLECTIVE_TIMEOUT = timedelta(hours=2)
"""How long a rank waits for the others: rank 0 evaluates alone while they wait."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the job's processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over every rank."""
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=_device())
        dist.all_reduce(t)
        return [float(v) for v in t.tolist()]

    def from_main(self, value: int) -> int:
        """Rank 0's value, on every rank (a choice made once, such as the batch size)."""
        if self.world == 1:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64, device=_device())
        dist.broadcast(t, src=0)
        return int(t.item())

    def sum_gradients(self, params: list[Any]) -> None:
        """Every rank's gradients summed into each (one flat all-reduce)."""
        if self.world == 1:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(g).clone()
            offset += n

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def data_parallel_backend(asked: str, chosen: str, why: str) -> tuple[str, str]:
    """The backend of a job on several processes: peft, whatever `auto` would pick alone
    (Unsloth and mlx train on one device); one asked for by name that cannot is an error."""
    from engine.errors import EngineError
    from forge_api.backend_rules import data_parallel_problem

    if problem := data_parallel_problem(asked):
        raise EngineError(problem)
    if chosen == "peft":
        return chosen, why
    return "peft", f"{why}; but on several GPUs peft (Unsloth and mlx train on one device)"


def join() -> Ranks:
    """This process's ranks; with several, the process group is joined (NCCL on CUDA, gloo on
    a CPU) and a CUDA process takes its own GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local)


def leave(ranks: Ranks) -> None:
    if ranks.world > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def rank_from_env() -> int:
    """This process's rank as the launcher set it, before any process group exists."""
    return int(os.environ.get("RANK", "0"))


def _device() -> Any:
    import torch

    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
