"""Peak memory of one LoRA training step on a real model, at a batch where the logits dominate:
SmolLM2-135M-Instruct (a 49,152-token vocabulary), 8 rows of 512 tokens, on the CPU.

Three ways to compute the same loss, each in its own process from the same weights and tokens:

* `transformers`: the model's own loss from `labels`, as `Trainer` computes it: the whole
  batch's logits, upcast, their softmax and its gradient;
* `ours`: the engine's chunked cross-entropy (`engine.batching.loss_sum`);
* `ours + checkpointing`: the same with gradient checkpointing, which the engine turns on by
  itself when without it fewer than 4 rows fit.

Each prints its peak resident memory, what the step added to the loaded model, and the loss,
which must agree. Not in `make bench`: a few minutes on a CPU.

    .venv/bin/python -m bench.loss_memory [--rows 8] [--seq 512]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.child import run_child
from bench.mission_real import peak_rss, real_model

WAYS = ("transformers", "ours", "ours + checkpointing")


def child(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from bench.peft_trainer import peft_lora
    from engine.batching import loss_sum
    from engine.train import set_checkpointing

    model = peft_lora(Path(job["base"]), 8)
    model.train()
    rows, seq = job["rows"], job["seq"]
    ids = torch.randint(0, model.config.vocab_size, (rows, seq), generator=torch.Generator())
    positions = torch.arange(seq).repeat(rows, 1)
    loaded = peak_rss()
    if job["way"] == "transformers":
        loss = model(input_ids=ids, position_ids=positions, labels=ids, use_cache=False).loss
    else:
        set_checkpointing(model, job["way"] == "ours + checkpointing")
        total, n = loss_sum(model, {"input_ids": ids, "labels": ids, "position_ids": positions})
        loss = total / n
    loss.backward()
    return {"loss": float(loss.detach()), "loaded": loaded, "peak": peak_rss()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    base = real_model()
    got: dict[str, dict[str, Any]] = {}
    for way in WAYS:
        job = {"base": str(base), "rows": args.rows, "seq": args.seq, "way": way}
        got[way] = r = run_child("bench.loss_memory", way, json.dumps(job))
        print(
            f"{way:<22} peak {r['peak'] / 2**30:5.2f} GiB, the step added"
            f" {(r['peak'] - r['loaded']) / 2**30:5.2f} GiB; loss {r['loss']:.4f}",
            flush=True,
        )
    theirs = got["transformers"]["peak"]
    ratios = {way: round(got[way]["peak"] / theirs, 3) for way in WAYS[1:]}
    for way, ratio in ratios.items():
        print(f"peak {way} / transformers: {ratio:.2f}")
    print(json.dumps({"rows": args.rows, "seq": args.seq, "peak_ratio": ratios}))


if __name__ == "__main__":
    main()
