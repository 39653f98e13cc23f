"""Turning packed rows into tensors, and the token-level loss every job computes the same way."""

from __future__ import annotations

import math
from typing import Any

from engine import control
from engine.data import IGNORE, Row


def collate(rows: list[Row], pad_id: int, device: Any) -> dict[str, Any]:
    """Pad rows to the longest; padding is a segment of its own (positions from 0), labels IGNORE.

    No attention mask is passed: transformers derives a block-diagonal causal mask from the
    position ids, so examples packed in one row never attend to each other.
    """
    import torch

    width = max(r.tokens for r in rows)
    ids, labels, positions = [], [], []
    for r in rows:
        pad = width - r.tokens
        ids.append(r.input_ids + [pad_id] * pad)
        labels.append(r.labels + [IGNORE] * pad)
        positions.append(r.position_ids + list(range(pad)))
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "position_ids": torch.tensor(positions, device=device),
    }


def loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Summed next-token cross-entropy over the labelled tokens, and how many there were."""
    import torch.nn.functional as F

    # No KV cache: transformers only derives the packed (block-diagonal) mask without one.
    logits = model(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
    ).logits
    shifted = logits[:, :-1, :].float()
    targets = batch["labels"][:, 1:]
    total = F.cross_entropy(
        shifted.reshape(-1, shifted.size(-1)),
        targets.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return total, int((targets != IGNORE).sum())


def evaluate(model: Any, rows: list[Row], batch_size: int, pad_id: int, device: Any) -> float:
    """Mean loss per answer token over `rows` (perplexity is its exp)."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            with control.interruptible():  # a long evaluation still stops at once on cancel
                s, n = loss_sum(model, collate(rows[i : i + batch_size], pad_id, device))
            total += float(s)
            count += n
    if was_training:
        model.train()
    return total / max(count, 1)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
