"""The chunked loss gives what the whole-logits loss gives, value and gradients, on the tiny
Llama with LoRA: with a frozen LM head (the fused path, gradient made with the loss), with a
trained one (each chunk recomputed), and without gradients (evaluation)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import batching
from engine.data import IGNORE

torch = pytest.importorskip("torch")


def lora_model(tiny_model: Path, train_head: bool = False) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, local_files_only=True)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    # LoRA's B starts at zero: give it values, so the gradient of A is not zero too.
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    if train_head:
        model.get_base_model().get_output_embeddings().weight.requires_grad_(True)
    return model


def packed_batch(vocab: int) -> dict[str, Any]:
    """Two rows, the first holding two packed examples; prompts and padding unlabelled."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, vocab, (2, 40), generator=g)
    labels = ids.clone()
    labels[0, :6] = labels[0, 20:26] = labels[1, :10] = IGNORE
    labels[1, 33:] = IGNORE
    positions = torch.cat([torch.arange(20), torch.arange(20)]).repeat(2, 1)
    return {"input_ids": ids, "labels": labels, "position_ids": positions}


def loss_and_grads(
    model: Any, batch: dict[str, Any], loss: Any
) -> tuple[float, int, dict[str, Any]]:
    model.zero_grad(set_to_none=True)
    total, n = loss(model, batch)
    (total / n).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return float(total.detach()), n, grads


@pytest.mark.parametrize("train_head", [False, True], ids=["frozen-head", "trained-head"])
def test_chunks_give_the_whole_logits_loss_and_gradients(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, train_head: bool
) -> None:
    monkeypatch.setattr(batching, "LOSS_CHUNK", 7)  # many chunks, the last one short
    model = lora_model(tiny_model, train_head)
    batch = packed_batch(model.config.vocab_size)
    assert batching._decoder_and_head(model) is not None  # the chunked path is taken

    whole, n_whole, expected = loss_and_grads(model, batch, batching._whole_logits_loss)
    chunked, n, grads = loss_and_grads(model, batch, batching.loss_sum)
    assert n == n_whole == int((batch["labels"][:, 1:] != IGNORE).sum())
    assert chunked == pytest.approx(whole, rel=1e-5)
    assert grads.keys() == expected.keys() and len(grads) > 0
    assert any("lm_head" in k for k in grads) == train_head
    for key, grad in grads.items():
        torch.testing.assert_close(grad, expected[key], rtol=1e-4, atol=1e-6, msg=key)

    with torch.no_grad():  # evaluation: chunks, no gradient kept
        assert float(batching.loss_sum(model, batch)[0]) == pytest.approx(whole, rel=1e-5)


def test_models_whose_logits_are_more_than_the_head_take_their_own_forward(
    tiny_model: Path,
) -> None:
    model = lora_model(tiny_model)
    model.config.final_logit_softcapping = 30.0  # as Gemma 2's config says
    assert batching._decoder_and_head(model) is None


@pytest.mark.parametrize("path", ["chunked", "whole-logits"])
def test_each_rows_loss_adds_up_to_the_batch_loss(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The per-row losses a paired comparison reads are the batch's loss, split by row."""
    monkeypatch.setattr(batching, "LOSS_CHUNK", 7)  # chunks that straddle rows
    model = lora_model(tiny_model)
    if path == "whole-logits":
        model.config.final_logit_softcapping = 30.0  # our config flag; the tiny model ignores it
    batch = packed_batch(model.config.vocab_size)
    with torch.no_grad():
        whole, n = batching._whole_logits_loss(model, batch)
        sums, counts = batching.row_loss_sums(model, batch)
        rows = [
            batching._whole_logits_loss(model, {k: v[i : i + 1] for k, v in batch.items()})
            for i in range(2)
        ]
    assert counts == [int(c) for _, c in rows] and sum(counts) == n
    assert sum(sums) == pytest.approx(float(whole), rel=1e-5)
    for got, (want, _) in zip(sums, rows, strict=True):
        assert got == pytest.approx(float(want), rel=1e-4)
