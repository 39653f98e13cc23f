"""Training checkpoints: the adapter, optimizer, scheduler, position in the data and RNG state.

Written to `step-N.partial` and renamed into place, so a crash mid-write never leaves a torn
checkpoint that looks good; the newest two are kept.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from forge_api.run_dir import RunDir

KEEP = 2


def save(
    root: Path, step: int, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]
) -> Path:
    import torch

    final = root / f"step-{step:08d}"
    partial = root / f"step-{step:08d}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        model.save_pretrained(partial)
        torch.save(optimizer.state_dict(), partial / "optimizer.pt")
        torch.save(scheduler.state_dict(), partial / "scheduler.pt")
        torch.save({"torch": torch.get_rng_state()}, partial / "rng.pt")
        (partial / "state.json").write_text(json.dumps(state | {"step": step}))
    except (OSError, RuntimeError) as exc:
        # A full disk surfaces as OSError, or as a cryptic RuntimeError from torch's zip
        # writer: the free space, measured before the torn folder is removed, says which.
        free_mb = shutil.disk_usage(root).free / 1e6
        shutil.rmtree(partial, ignore_errors=True)
        kept = complete(root)
        raise EngineError(
            f"could not write the checkpoint of step {step} in {root} "
            f"({free_mb:.1f} MB free on its disk): {exc}; "
            + (f"{kept[-1].name} is kept, resume from it" if kept else "no earlier checkpoint")
            + " once there is room (forge jobs resume)"
        ) from exc
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for old in complete(root)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete(root: Path) -> list[Path]:
    """The complete checkpoints in `root`, oldest first (`step-N` sort by name; prepare-model
    has one, `tokenizer`); `.partial` folders are torn writes and never count."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".partial"))


def newest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint a job left in its run dir. The daemon reads this after a
    crash, when the engine wrote a checkpoint the dead daemon never heard of."""
    kept = complete(RunDir(run_dir).checkpoints)
    return kept[-1] if kept else None


def load(path: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore everything `save` wrote into the live objects; returns the saved state."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(path / "adapter_model.safetensors")))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
    state: dict[str, Any] = json.loads((path / "state.json").read_text())
    return state
