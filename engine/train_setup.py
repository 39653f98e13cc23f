"""What every training backend shares before its loop: the examples made into rows (`Data`), the
layers to adapt, and the learning rate. The PyTorch loop (`engine.train`) and the MLX one
(`engine.mlx_backend`) both start from here, so neither imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data import DataReport, Example, Row, fitting, load_examples, pack, split, unpacked
from engine.errors import EngineError
from forge_api.jobs import TrainParams

# Projection names LoRA targets, by architecture family; `auto` picks the first family present.
TARGETS = [
    ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    ["c_attn", "c_proj", "c_fc"],
    ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
]


@dataclass
class Data:
    tokenizer: Any
    train: list[Row]
    val: list[Row]
    report: DataReport
    val_examples: list[Example]


def prepare_data(
    dataset: str,
    tokenizer: Any,
    max_len: int,
    val_fraction: float,
    packing: bool,
    skip: bool,
    inside: str | None = None,
) -> Data:
    """Examples that fit `max_len`, split into training and validation rows (validation is
    drawn from those that fit, so it is never empty with two examples or more). `inside`: the
    data dir, out of which no file is read."""
    examples, report = load_examples(
        Path(dataset).expanduser(), skip_bad=skip, inside=Path(inside) if inside else None
    )
    pairs = fitting(examples, tokenizer, max_len, report, skip)
    train, val = split(pairs, val_fraction, key=lambda pair: pair[0].key())
    rows = pack if packing else lambda items, _n: unpacked(items)
    return Data(
        tokenizer,
        rows([tok for _, tok in train], max_len),
        rows([tok for _, tok in val], max_len),
        report,
        [ex for ex, _ in val],
    )


def pick_targets(layer_names: set[str], asked: list[str] | str) -> list[str]:
    """The projection names to adapt: as asked, or the first known family the model has."""
    if asked != "auto":
        return list(asked)
    for family in TARGETS:
        found = [n for n in family if n in layer_names]
        if found:
            return found
    raise EngineError("params.target_modules: no known projection layers; name them explicitly")


SMALL_MODEL_PARAMS = 300_000_000
"""Below this (and over 50 M), LoRA's default rate is 1e-3; above it, 2e-4."""


def size_learning_rate(p: TrainParams, n_params: int) -> tuple[float, str]:
    if p.learning_rate:
        return p.learning_rate, "asked for"
    if n_params < 50_000_000:
        return 5e-3, f"a small model ({n_params / 1e6:.1f} M parameters) takes a high rate"
    if n_params < SMALL_MODEL_PARAMS:
        # Measured: SmolLM2-135M, markupsafe, one epoch in the default 30-minute mission
        # (`python -m bench.mission_quality`): -14.5 % held-out loss on new material and general
        # text 7.2 % better at 1e-3, against -9.0 % and 1.8 % at 2e-4.
        return 1e-3, f"a model of {n_params / 1e6:.0f} M parameters learns faster at 1e-3"
    return 2e-4, "the usual LoRA rate for a model of this size"


def use_physical_cores() -> str | None:
    """On a CPU, one torch thread per physical core (hyper-threads share a core's arithmetic
    units, and extra threads only contend for them), unless OMP_NUM_THREADS says otherwise; what
    was set, said for the log, or None when nothing was changed."""
    import os

    import psutil
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    if torch.get_num_threads() == cores:
        return None
    torch.set_num_threads(cores)
    return f"{cores} torch threads, one per physical core (OMP_NUM_THREADS sets another number)"
