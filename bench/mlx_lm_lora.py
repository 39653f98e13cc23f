"""mlx-lm's own LoRA training (what `mlx_lm.lora` runs) as a baseline: its trainer, batching and
loss, on the same tokenized examples (each with the offset of its answer, so the loss is on the
answer as ours is), the same LoRA rank and scale on the same projections of every layer, the
same learning rate with a cosine schedule after a 3 % warm-up, `rows` examples a step, for one
epoch or `max_steps`. On Linux this is mlx's CPU build.

The adapter is written as PEFT's (`engine.mlx_backend.to_peft`) so the same held-out evaluation
scores it as every other contender.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.peft_trainer import PROJECTIONS
from engine.data import IGNORE


def mlx_lm_lora(
    base: Path,
    dataset: Path,
    features: list[dict[str, list[int]]],
    out: Path,
    *,
    rank: int,
    lr: float,
    rows: int,
    seq: int,
    max_steps: int | None = None,
) -> tuple[Path, float, float, int]:
    """Train; returns (PEFT adapter folder, tokens trained on, seconds `train()` took, steps)."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm import load
    from mlx_lm.tuner.datasets import CacheDataset
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    from engine.mlx_backend import MlxExamples, lora_keys, to_peft
    from forge_api.jobs import TrainParams

    items = [
        (f["input_ids"], next(i for i, t in enumerate(f["labels"]) if t != IGNORE))
        for f in features
    ]
    mx.random.seed(0)
    model, _ = load(str(base))
    model.freeze()
    keys = lora_keys(model.layers[0], PROJECTIONS)
    linear_to_lora_layers(
        model, len(model.layers), {"rank": rank, "scale": 2.0, "dropout": 0.0, "keys": keys}
    )
    steps = max_steps or len(items) // rows
    warmup = max(1, steps * 3 // 100)
    schedule = optim.join_schedules(
        [optim.linear_schedule(0.0, lr, warmup), optim.cosine_decay(lr, max(steps - warmup, 1))],
        [warmup],
    )
    args = TrainingArgs(
        batch_size=rows,
        iters=steps,
        val_batches=0,
        steps_per_report=steps,
        steps_per_eval=10**9,
        steps_per_save=10**9,
        adapter_file=str(out / "mlx-adapters.safetensors"),
        max_seq_length=seq,
    )
    out.mkdir(parents=True, exist_ok=True)
    data = CacheDataset(MlxExamples(items))
    started = time.perf_counter()
    train(
        model=model,
        optimizer=optim.AdamW(learning_rate=schedule, weight_decay=0.0),
        train_dataset=data,
        val_dataset=data,
        args=args,
    )
    seconds = time.perf_counter() - started
    # Its batches: examples sorted by length, `rows` at a time, the longest remainder left out,
    # taken in a random order: an epoch's tokens, pro rata for fewer steps.
    lengths = sorted(len(i) for i, _ in items)
    per_epoch = len(lengths) // rows
    epoch_tokens = sum(lengths[: per_epoch * rows])
    tokens = epoch_tokens * steps / per_epoch
    adapter = out / "adapter"
    params = TrainParams.model_validate(
        {"base_model": str(base), "dataset": str(dataset), "rank": rank}
    )
    to_peft(model, adapter, params, 2.0, keys, base)
    return adapter, tokens, seconds, steps
