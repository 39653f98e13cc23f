"""The `mlx` backend: mlx-lm's LoRA trainer (Apple silicon, or mlx's CPU build on Linux),
reporting through our event stream and saving a PEFT adapter like every other backend.

Our data pipeline does the tokenising, so the formats, checks and split are the same as with
PEFT; mlx-lm batches and trains. Its adapter (`lora_a`/`lora_b`, scaled by `scale`) is written
out as PEFT's (`lora_A`/`lora_B` transposed, `lora_alpha = scale × r`), so eval, merge and
deploy take it as they take any adapter. Resuming restores the adapter weights and the step;
mlx-lm keeps no optimizer state on disk, so the optimizer starts afresh.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

from engine import control
from engine.data import IGNORE
from engine.errors import EngineError
from engine.events import Emitter
from engine.train_setup import Data, pick_targets, size_learning_rate
from forge_api.jobs import JobSpec, TrainParams
from forge_api.run_dir import RunDir


class MlxExamples:
    """What mlx-lm's batching reads: (tokens, offset of the first trained token) per example."""

    def __init__(self, items: list[tuple[list[int], int]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.items[i]

    def process(self, item: tuple[list[int], int]) -> tuple[list[int], int]:
        return item


class OutOfTime(Exception):
    """Raised from the training callback to end mlx-lm's loop when the time budget is spent."""


def answer_loss(model: Any, batch: Any, lengths: Any) -> tuple[Any, Any]:
    """Cross-entropy over each example's labelled tokens: from its offset to its last token.

    mlx-lm's own loss also counts the padding target just past the end (`<=` length), which
    would teach the model to emit a pad token after every answer.
    """
    import mlx.core as mx
    import mlx.nn as nn

    inputs, targets = batch[:, :-1], batch[:, 1:]
    logits = model(inputs)
    steps = mx.arange(1, targets.shape[1] + 1)
    mask = mx.logical_and(steps >= lengths[:, 0:1], steps < lengths[:, 1:])
    ce = nn.losses.cross_entropy(logits, targets) * mask
    ntoks = mask.sum()
    return ce.astype(mx.float32).sum() / ntoks, ntoks


def _examples(rows: list[Any]) -> MlxExamples:
    items = []
    for r in rows:
        # Unpacked rows: one example each. Its first labelled token starts the loss.
        first = next((i for i, t in enumerate(r.labels) if t != IGNORE), len(r.labels))
        items.append((list(r.input_ids), max(first, 1)))
    return MlxExamples(items)


def lora_keys(layer: Any, asked: list[str] | str) -> list[str]:
    """mlx-lm's keys (paths inside one transformer block) of the layers to adapt."""
    names = [name for name, _ in layer.named_modules() if name]
    wanted = set(pick_targets({n.rsplit(".", 1)[-1] for n in names}, asked))
    return [n for n in names if n.rsplit(".", 1)[-1] in wanted]


def to_peft(
    model: Any, out: Path, p: TrainParams, scale: float, keys: list[str], base: Path
) -> None:
    """Write mlx-lm's trained LoRA weights as a PEFT adapter folder."""
    import mlx.core as mx
    import numpy as np
    from mlx.utils import tree_flatten
    from peft import LoraConfig
    from safetensors.numpy import save_file

    tensors: dict[str, Any] = {}
    for name, value in tree_flatten(model.trainable_parameters()):
        array = np.array(value.astype(mx.float32))
        if name.endswith(".lora_a"):
            key = name[: -len(".lora_a")] + ".lora_A.weight"
        elif name.endswith(".lora_b"):
            key = name[: -len(".lora_b")] + ".lora_B.weight"
        else:
            continue
        tensors["base_model.model." + key] = np.ascontiguousarray(array.T)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    modules = sorted({k.rsplit(".", 1)[-1] for k in keys})
    LoraConfig(
        r=p.rank,
        lora_alpha=scale * p.rank,
        lora_dropout=p.dropout,
        target_modules=modules,
        task_type="CAUSAL_LM",
        base_model_name_or_path=str(base),
    ).save_pretrained(out)


def _lora_model(p: TrainParams, base: Path, events: Emitter) -> tuple[Any, list[str], float]:
    """The base model, frozen, with LoRA layers on `target_modules`; the keys and the scale."""
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model, _ = load(str(base))
    model.freeze()
    keys = lora_keys(model.layers[0], p.target_modules)
    alpha = p.alpha or 2 * p.rank
    scale = alpha / p.rank
    linear_to_lora_layers(
        model,
        len(model.layers),
        {"rank": p.rank, "scale": scale, "dropout": p.dropout, "keys": keys},
    )
    events.log(f"lora (mlx): rank {p.rank}, alpha {alpha:g}, on {', '.join(keys)}")
    return model, keys, scale


def _optimizer(p: TrainParams, lr: float, total: int, remaining: int) -> Any:
    """AdamW on the planned schedule, with its warm-up, over the steps still to run."""
    import mlx.optimizers as optim

    warmup = min(
        p.warmup_steps if p.warmup_steps is not None else max(1, total * 3 // 100),
        max(remaining - 1, 0),
    )
    main = {
        "cosine": optim.cosine_decay(lr, max(remaining - warmup, 1)),
        "linear": optim.linear_schedule(lr, 0.0, max(remaining - warmup, 1)),
        "constant": lr,
    }[p.lr_schedule]
    schedule = (
        optim.join_schedules([optim.linear_schedule(0.0, lr, warmup), main], [warmup])
        if warmup
        else main
    )
    return optim.AdamW(learning_rate=schedule, weight_decay=0.0)


def no_replay_note(share: float) -> str:
    """What the log says of `general_replay`, which this backend does not do."""
    return (
        f"general_replay {share:g}: not done by the mlx backend (the base's answers are"
        " written with transformers); training on the dataset alone"
    )


def train_mlx(
    spec: JobSpec, p: TrainParams, base: Path, data: Data, events: Emitter
) -> dict[str, Any]:
    """Train with mlx-lm's trainer, reporting as every job does; the adapter saved for PEFT."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.datasets import CacheDataset
    from mlx_lm.tuner.trainer import TrainingArgs, evaluate, train

    if p.method not in ("lora",):
        raise EngineError(f"params.method: the mlx backend trains lora, not {p.method}; use peft")
    mx.random.seed(p.seed)
    model, keys, scale = _lora_model(p, base, events)
    run_dir = Path(spec.run_dir)
    ckpt_dir = RunDir(run_dir).checkpoints
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    start = 0
    if spec.resume_from and Path(spec.resume_from).is_file():
        model.load_weights(spec.resume_from, strict=False)
        start = int(Path(spec.resume_from).name.split("_")[0])
        events.log(
            f"resuming from checkpoint {spec.resume_from} at step {start} "
            "(adapter weights; the optimizer starts afresh)"
        )

    if p.general_replay:
        events.log(no_replay_note(p.general_replay))
    train_set, val_set = _examples(data.train), _examples(data.val or data.train)
    batch = p.batch_size or max(1, min(8, len(train_set)))
    per_epoch = max(1, len(train_set) // batch)
    total = p.max_steps or max(p.min_steps, math.ceil(p.epochs * per_epoch))
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    lr, lr_reason = size_learning_rate(p, int(n_params))
    events.log(f"batch size {batch}, {total} steps, learning rate {lr:g}: {lr_reason}")
    remaining = total - start
    optimizer = _optimizer(p, lr, total, remaining)

    announced: set[int] = set()
    reached = [start]  # the last step reported, for a checkpoint on stop
    loop_began = time.monotonic()

    class Reporter(TrainingCallback):  # type: ignore[misc]
        def on_train_loss_report(self, info: dict[str, Any]) -> None:
            step = start + int(info["iteration"])
            reached[0] = step
            events.metric(step, loss=float(info["train_loss"]), lr=float(info["learning_rate"]))
            events.progress(
                step, total, stage="train", tokens_per_s=round(float(info["tokens_per_second"]), 1)
            )
            saved = ckpt_dir / f"{step - 1:07d}_adapters.safetensors"
            if step - 1 not in announced and saved.exists():
                announced.add(step - 1)
                events.checkpoint(str(saved), step - 1)
            control.check()
            # The budget is the job's wall time: another step must still fit in it.
            per_step = (time.monotonic() - loop_began) / max(step - start, 1)
            spent = time.monotonic() - events.started
            if p.max_minutes and spent + per_step >= p.max_minutes * 60 and step < total:
                events.log(
                    f"time budget of {p.max_minutes:g} min: stopping after step {step}/{total}"
                    f" ({spent / 60:.1f} min spent); saving the adapter"
                )
                raise OutOfTime

        def on_val_loss_report(self, info: dict[str, Any]) -> None:
            loss = float(info["val_loss"])
            events.metric(
                start + int(info["iteration"]), eval_loss=loss, perplexity=math.exp(min(loss, 50))
            )

    args = TrainingArgs(
        batch_size=batch,
        iters=remaining,
        val_batches=-1,
        steps_per_report=1,
        steps_per_eval=p.eval_every or remaining,
        steps_per_save=p.checkpoint_every,
        adapter_file=str(ckpt_dir / "adapters.safetensors"),
        max_seq_length=p.max_seq_len,
        grad_accumulation_steps=p.grad_accum,
    )
    try:
        train(
            model=model,
            optimizer=optimizer,
            train_dataset=CacheDataset(train_set),
            val_dataset=CacheDataset(val_set),
            args=args,
            training_callback=Reporter(),
            loss=answer_loss,
        )
    except OutOfTime:
        pass
    except control.StopRequested:
        step = reached[0]
        path = ckpt_dir / f"{step:07d}_adapters.safetensors"
        mx.save_safetensors(str(path), dict(tree_flatten(model.trainable_parameters())))
        events.checkpoint(str(path), step)
        raise
    final: float | None = None
    if p.evaluate and len(val_set):  # a mission's eval job measures the same rows instead
        final = float(
            evaluate(
                model=model,
                dataset=CacheDataset(val_set),
                batch_size=batch,
                num_batches=-1,
                max_seq_length=p.max_seq_len,
                loss=answer_loss,
            )
        )
        events.metric(reached[0], eval_loss=final, perplexity=math.exp(min(final, 50)))
    adapter = RunDir(run_dir).adapter
    shutil.rmtree(adapter, ignore_errors=True)
    to_peft(model, adapter, p, scale, keys, base)
    data.tokenizer.save_pretrained(adapter)
    RunDir(run_dir).mlx_adapter.write_text(json.dumps({"keys": keys, "scale": scale}))
    return {"steps": reached[0], "eval_loss": final, "adapter": str(adapter)}
