"""A deterministic synthetic chat dataset with learnable answers of very different lengths.

Used by the demo, the tests and the benchmarks: no download, the same file for the same seed,
and answers a tiny model can measurably learn (arithmetic, counting, repeating, reversing).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

WORDS = ["forge", "model", "adapter", "daemon", "socket", "commit", "tensor", "mission", "repo"]


def example(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randrange(100), rng.randrange(100)
        q, ans = f"What is {a} + {b}?", f"{a} + {b} = {a + b}."
    elif kind == 1:
        lo = rng.randrange(50)
        hi = lo + rng.randrange(2, 40)
        q, ans = (
            f"List the numbers from {lo} to {hi}.",
            ", ".join(map(str, range(lo, hi + 1))) + ".",
        )
    elif kind == 2:
        word, n = rng.choice(WORDS), rng.randrange(1, 25)
        q, ans = f"Say {word} {n} times.", " ".join([word] * n)
    else:
        word = rng.choice(WORDS)
        q, ans = f"Spell {word} backwards.", " ".join(reversed(word))
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]}


def write_dataset(path: Path, count: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(count):
            fh.write(json.dumps(example(rng)) + "\n")
    return path
