"""How much memory one training row takes on this machine, measured, and the batch that fits.

A guess from the parameter count drove a 135 M model with a 49 k vocabulary to 13.7 GB on a
CPU: most of a step's memory is the logits and their gradient, which grow with the vocabulary,
not the width. So before training, one forward and backward pass on a full row (batch 1, the
longest row there is) is measured, and the batch is what the free memory holds of that, with
room to spare. The job's log says what was measured; `measured.json` in the run dir keeps it
for the agent, which sizes a mission's plan and ETA from it.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Of the memory free, the share a batch may take: the optimizer's state, the allocator's
# fragmentation and whatever else runs on the machine need the rest.
SHARE = 0.5
MAX_ROWS = {"cuda": 64, "mps": 32, "cpu": 8}
CPU_STEP_TOKENS = 4096
MEASURED = "measured.json"


@dataclass
class Measured:
    """What a train job measured on this machine; written to `<run dir>/measured.json`."""

    device: str
    max_seq_len: int
    bytes_per_row: int
    available_bytes: int
    batch_size: int
    tokens_per_s: float | None = None
    load_s: float | None = None
    """Seconds from the job's start to its model ready: what every job on this base pays."""
    eval_tokens_per_s: float | None = None
    """Held-out loss, measured without gradients: a mission's eval is sized from it."""
    gen_step_s: float | None = None
    """Seconds per generated token for a batch of prompts, greedy."""
    plain_bytes_per_row: int | None = None
    """A row's memory without gradient checkpointing, from the job's first pass (which no
    earlier pass's memory hides): what later jobs of this base size their batch from."""

    def write(self, run_dir: Path, **extra: Any) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / MEASURED).write_text(json.dumps(asdict(self) | extra, indent=2))


def _proc_status(field: str) -> int | None:
    """A memory figure of this process from /proc (Linux), in bytes."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else None


def _reset_peak() -> bool:
    """Start a new resident-set peak (Linux ≥ 4.0); False where that cannot be done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def available_bytes(device: str, memory_limit: int | None) -> int:
    """Memory free for this job: the device's, and under the job's address-space limit."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    free = int(psutil.virtual_memory().available)
    if memory_limit and (size := _proc_status("VmSize")) is not None:
        free = min(free, max(0, memory_limit - size))
    return free


def measure_row(step: Any, device: str) -> int | None:
    """Peak memory a `step()` (a forward and backward pass) adds, in bytes; None where this
    machine cannot say."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return int(torch.cuda.max_memory_allocated() - before)
    if device == "mps":
        import torch

        before = torch.mps.driver_allocated_memory()
        step()
        return int(torch.mps.driver_allocated_memory() - before) or None
    if sys.platform.startswith("linux") and _reset_peak():
        before = _proc_status("VmRSS")
        step()
        peak = _proc_status("VmHWM")
        if before is None or peak is None:
            return None
        return max(0, peak - before) or None
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB elsewhere
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    step()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - before
    return grown or None


def row_floor(model: Any, tokens: int, loss_chunk: int) -> int:
    """The least memory a row of `tokens` can take in a forward and backward pass: every decoder
    layer's input, kept for the backward pass even with gradient checkpointing, and one chunk of
    fp32 logits with its gradient. A measure below this (the allocator reusing memory it already
    held) is not a measure, so no row is ever said to take 0 MiB."""
    config = getattr(model, "config", None)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    width = next(iter(model.parameters())).element_size() if hasattr(model, "parameters") else 4
    return max(1, tokens * hidden * layers * width + 2 * min(tokens, loss_chunk) * vocab * 4)


def batch_for(per_row: int, available: int, device: str, max_seq_len: int) -> int:
    """Rows per micro-batch that fit SHARE of the free memory, within the device's cap; on a
    CPU also about CPU_STEP_TOKENS per step, where a bigger batch only makes steps longer."""
    kind = device.split(":")[0]
    cap = MAX_ROWS.get(kind, 8)
    if kind == "cpu":
        cap = min(cap, max(1, CPU_STEP_TOKENS // max_seq_len))
    return int(max(1, min(cap, available * SHARE // max(per_row, 1))))
