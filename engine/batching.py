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


LOSS_CHUNK = 1024
"""Labelled tokens whose logits exist at once: with a 49k-token vocabulary, 1024 of them take
200 MB in float32 where a whole batch of 8 × 512 took 800 MB, three times over for the softmax,
its float copy and its gradient."""

POSTPROCESSED_LOGITS = ("final_logit_softcapping", "logit_scale", "logits_scaling")
"""Config keys of models whose logits are not just the LM head's output (Gemma 2, Cohere,
Granite): they take the model's own forward, whole logits and all."""


def _decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """The model's decoder stack and its LM head, where logits are `head(hidden)`; else None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if any(getattr(config, key, None) for key in POSTPROCESSED_LOGITS):
        return None
    try:
        decoder, head = base.get_decoder(), base.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if decoder is None or head is None or decoder is base:
        return None
    return decoder, head


def _chunk_loss(head: Any, hidden: Any, targets: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


def _head_loss_fused(hidden: Any, weight: Any, bias: Any, targets: Any) -> Any:
    """Summed cross-entropy of `hidden @ weight.T (+ bias)`, chunk by chunk, for a frozen head
    (LoRA never trains it). The gradient for `hidden` is made in the same pass, while each
    chunk's logits exist anyway, and kept ([tokens, hidden], small) for the backward pass: no
    logits are kept and none made twice."""
    import torch
    import torch.nn.functional as F

    class FusedHeadLoss(torch.autograd.Function):  # type: ignore[misc]
        @staticmethod
        def forward(ctx: Any, h_all: Any) -> Any:
            total = torch.zeros((), dtype=torch.float32, device=h_all.device)
            grad = torch.empty_like(h_all)
            for i in range(0, targets.numel(), LOSS_CHUNK):
                t = targets[i : i + LOSS_CHUNK]
                logits = F.linear(h_all[i : i + LOSS_CHUNK], weight, bias).float()
                lse = torch.logsumexp(logits, dim=-1)
                total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
                probs = logits.sub_(lse[:, None]).exp_()  # softmax, in the logits' own memory
                probs[torch.arange(t.numel(), device=t.device), t] -= 1.0
                grad[i : i + LOSS_CHUNK] = probs.to(weight.dtype) @ weight
            ctx.save_for_backward(grad)
            return total

        @staticmethod
        def backward(ctx: Any, upstream: Any) -> Any:
            (grad,) = ctx.saved_tensors
            return grad * upstream.to(grad.dtype)

    return FusedHeadLoss.apply(hidden)


def _head_loss(head: Any, hidden: Any, targets: Any) -> Any:
    """The LM head and the loss over labelled hidden states, never all their logits at once."""
    import torch
    from torch.utils.checkpoint import checkpoint

    weight, bias = getattr(head, "weight", None), getattr(head, "bias", None)
    frozen = weight is not None and not weight.requires_grad
    frozen = frozen and (bias is None or not bias.requires_grad)
    if (
        torch.is_grad_enabled()
        and hidden.requires_grad
        and frozen
        and type(head) is torch.nn.Linear
    ):
        return _head_loss_fused(hidden, weight, bias, targets)
    total = hidden.new_zeros((), dtype=torch.float32)
    for i in range(0, targets.numel(), LOSS_CHUNK):
        h, t = hidden[i : i + LOSS_CHUNK], targets[i : i + LOSS_CHUNK]
        if torch.is_grad_enabled() and hidden.requires_grad:  # a trained head: made again
            total = total + checkpoint(_chunk_loss, head, h, t, use_reentrant=False)
        else:
            total = total + _chunk_loss(head, h, t)
    return total


def loss_sum(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    """Summed next-token cross-entropy over the labelled tokens, and how many there were.

    The logits of a whole batch are never made: the decoder's hidden states are kept only at
    labelled positions, and the LM head and the loss run over them `LOSS_CHUNK` at a time; when
    training, the gradient of a chunk is made with its loss and its logits dropped (the
    chunked cross-entropy of Unsloth, Liger and Cut Cross-Entropy, in plain torch so it runs on
    every device)."""
    parts = _decoder_and_head(model)
    if parts is None:
        return _whole_logits_loss(model, batch)
    decoder, head = parts
    # No KV cache: transformers only derives the packed (block-diagonal) mask without one.
    hidden = decoder(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    hidden, targets = hidden[:, :-1, :][keep], targets[keep]
    return _head_loss(head, hidden, targets), int(targets.numel())


def _whole_logits_loss(model: Any, batch: dict[str, Any]) -> tuple[Any, int]:
    import torch.nn.functional as F

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


def row_loss_sums(model: Any, batch: dict[str, Any]) -> tuple[list[float], list[int]]:
    """Each row's summed next-token cross-entropy over its labelled tokens, and their count,
    without gradients: what a paired comparison of two models needs (the same rows, each
    scored by both). Like `loss_sum`, no batch's whole logits are made."""
    import torch
    import torch.nn.functional as F

    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    counts = keep.sum(dim=1)
    sums = torch.zeros(targets.shape[0], dtype=torch.float32, device=targets.device)
    parts = _decoder_and_head(model)
    if parts is None:
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits[:, :-1, :]
        losses = F.cross_entropy(
            logits.float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
        )
        return losses.sum(dim=1).tolist(), counts.tolist()
    decoder, head = parts
    hidden = decoder(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
    ).last_hidden_state[:, :-1, :][keep]
    owner = keep.nonzero()[:, 0]  # the row of each labelled token
    flat = targets[keep]
    for i in range(0, flat.numel(), LOSS_CHUNK):
        chunk = F.cross_entropy(
            head(hidden[i : i + LOSS_CHUNK]).float(), flat[i : i + LOSS_CHUNK], reduction="none"
        )
        sums.index_add_(0, owner[i : i + LOSS_CHUNK], chunk)
    return sums.tolist(), counts.tolist()


def row_losses(
    model: Any, rows: list[Row], batch_size: int, pad_id: int, device: Any
) -> list[tuple[float, int]]:
    """(summed loss, labelled tokens) of each of `rows`, in order."""
    import torch

    was_training = model.training
    model.eval()
    out: list[tuple[float, int]] = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            with control.interruptible():  # a long evaluation still stops at once on cancel
                batch = collate(rows[i : i + batch_size], pad_id, device)
                sums, counts = row_loss_sums(model, batch)
            out += zip(sums, counts, strict=True)
    if was_training:
        model.train()
    return out


def mean_loss(per_row: list[tuple[float, int]]) -> float:
    """Mean loss per answer token over rows scored by `row_losses`."""
    return sum(s for s, _ in per_row) / max(sum(n for _, n in per_row), 1)


def evaluate(model: Any, rows: list[Row], batch_size: int, pad_id: int, device: Any) -> float:
    """Mean loss per answer token over `rows` (perplexity is its exp)."""
    return mean_loss(row_losses(model, rows, batch_size, pad_id, device))


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
