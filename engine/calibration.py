"""What a calibration measures besides training speed: how fast the held-out loss and greedy
generation go for this base on this machine, so a mission's plan can size its evaluation to
fit the time budget instead of guessing it from the training speed."""

from __future__ import annotations

import time
from typing import Any

from engine.batching import evaluate
from engine.data import Row
from engine.evaluate import left_padded

GEN_PROMPTS, GEN_PROMPT_TOKENS, GEN_TOKENS = 4, 32, 8
"""A batch like a mission eval's (its 4 generations), short: the time per token is the figure."""


def eval_speeds(model: Any, rows: list[Row], pad_id: int, device: str) -> tuple[float, float]:
    """Tokens per second of the held-out loss over a couple of rows, and seconds per generated
    token for a small batch of prompts taken from the same rows."""
    import torch

    sample = rows[:2]
    began = time.monotonic()
    evaluate(model, sample, len(sample), pad_id, device)
    eval_tps = sum(r.tokens for r in sample) / max(time.monotonic() - began, 1e-9)

    ids, mask = left_padded(
        [r.input_ids[:GEN_PROMPT_TOKENS] for r in rows[:GEN_PROMPTS]], pad_id, device
    )
    model.eval()
    began = time.monotonic()
    with torch.no_grad():
        model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=GEN_TOKENS,
            min_new_tokens=GEN_TOKENS,
            do_sample=False,
            pad_token_id=pad_id,
        )
    step_s = (time.monotonic() - began) / GEN_TOKENS
    return round(eval_tps, 1), round(step_s, 4)
