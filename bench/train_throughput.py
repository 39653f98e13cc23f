"""Training throughput: the engine's `peft` backend against the script a user would write.

The baseline is `transformers.Trainer` + PEFT with padded batches (one example per row); ours
packs examples into full rows. Both train the tiny model with LoRA (same rank, alpha, learning
rate, schedule, seed) on the same training examples with the same answer-only labels, and both
adapters are scored by the same held-out evaluation. Two views, in one run:

* the same steps: as many optimizer steps as the baseline's epoch, 8 rows each (the issue's
  comparison; packed rows hold more examples, so ours also sees more data);
* the same examples per step: one epoch, with as many packed rows per step as the baseline's
  batch fills.

It prints tokens/s of each (tokens actually trained on, padding excluded), the ratios, and the
eval losses.

    .venv/bin/python -m bench.train_throughput [--examples 800] [--seq 256]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.peft_trainer import trainer_peft
from engine.batching import evaluate
from engine.events import Emitter
from engine.synthetic import write_dataset
from engine.tiny_model import build_model, train_tokenizer
from engine.train import run as train_ours
from engine.train_setup import prepare_data
from forge_api.jobs import JobSpec, PrepareModelParams

RANK, LR, BATCH = 8, 5e-3, 8


def build_tiny(root: Path) -> Path:
    params = PrepareModelParams()
    train_tokenizer(params, root / "tok")
    build_model(params, root / "tok", root / "tiny")
    return root / "tiny"


def ours(
    base: Path, dataset: Path, seq: int, root: Path, rows: int, steps: int | None, tag: str
) -> dict[str, Any]:
    spec = JobSpec(
        job_id="bench",
        kind="train",
        run_dir=str(root / tag),
        models_dir=str(root),
        datasets_dir=str(root),
        params={
            "base_model": str(base),
            "dataset": str(dataset),
            "max_seq_len": seq,
            "rank": RANK,
            "learning_rate": LR,
            "epochs": 1,
            "batch_size": rows,
            "max_steps": steps,
            "checkpoint_every": 10_000,
        },
    )
    summary = train_ours(spec, Emitter(io.StringIO()))
    return {"tokens_per_s": summary["tokens_per_s"], "adapter": root / tag / "adapter"}


def baseline(base: Path, dataset: Path, seq: int, root: Path) -> dict[str, Any]:
    """What a user would write: Trainer + PEFT, one example per row, padded per batch."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    data = prepare_data(str(dataset), tokenizer, seq, 0.1, packing=False, skip=False)
    features = [{"input_ids": r.input_ids, "labels": r.labels} for r in data.train]
    model, trainer, seconds = trainer_peft(
        base,
        tokenizer,
        features,
        root / "baseline",
        rank=RANK,
        lr=LR,
        rows=BATCH,
        warmup_steps=max(1, len(features) // BATCH * 3 // 100),
    )
    tokens = sum(len(f["input_ids"]) for f in features)
    model.save_pretrained(root / "baseline" / "adapter")
    return {
        "tokens_per_s": tokens / seconds,
        "adapter": root / "baseline" / "adapter",
        "tokens_per_step": tokens / len(features) * BATCH,
        "steps": trainer.state.global_step,
    }


def held_out_loss(base: Path, adapter: Path, dataset: Path, seq: int) -> float:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    data = prepare_data(str(dataset), tokenizer, seq, 0.1, packing=True, skip=False)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
    return evaluate(model, data.val, BATCH, tokenizer.pad_token_id, "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=800)
    parser.add_argument("--seq", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build_tiny(root)
        dataset = write_dataset(root / "chat.jsonl", args.examples, seed=11)
        theirs = baseline(base, dataset, args.seq, root)
        # 1. The comparison: the same steps of the same batch size (packed rows).
        same_steps = ours(base, dataset, args.seq, root, BATCH, theirs["steps"], "same-steps")
        # 2. The same examples per step on average: packed rows hold several examples each.
        rows = max(1, round(theirs["tokens_per_step"] / args.seq))
        same_examples = ours(base, dataset, args.seq, root, rows, None, "same-examples")
        loss = {
            name: held_out_loss(base, run["adapter"], dataset, args.seq)
            for name, run in [
                ("baseline", theirs),
                ("same_steps", same_steps),
                ("same_examples", same_examples),
            ]
        }
    ratio = same_steps["tokens_per_s"] / theirs["tokens_per_s"]
    ratio_examples = same_examples["tokens_per_s"] / theirs["tokens_per_s"]
    print(
        f"baseline, Trainer + PEFT, padded, {theirs['steps']} steps of {BATCH}: "
        f"{theirs['tokens_per_s']:8.0f} tokens/s, eval loss {loss['baseline']:.4f}"
    )
    print(
        f"ours, packed, the same {theirs['steps']} steps of {BATCH} rows:   "
        f"{same_steps['tokens_per_s']:8.0f} tokens/s, eval loss {loss['same_steps']:.4f}"
    )
    print(
        f"ours, packed, one epoch at {rows} row(s) per step:  "
        f"{same_examples['tokens_per_s']:8.0f} tokens/s, eval loss {loss['same_examples']:.4f}"
    )
    print(
        f"ratio ours/baseline at the same steps: {ratio:.2f}x "
        "(target >= 1.5, eval loss equal or better)"
    )
    print(f"ratio ours/baseline at the same examples per step: {ratio_examples:.2f}x")
    print(
        json.dumps(
            {
                "ratio": round(ratio, 3),
                "ratio_same_examples": round(ratio_examples, 3),
                "eval_loss": loss,
            }
        )
    )


if __name__ == "__main__":
    main()
