"""The eval's generated answers come in batches (left-padded prompts, one decoding pass per
token for the whole batch): each must be the answer the model gives to that prompt alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data import load_examples
from engine.evaluate import EVAL_BATCH, generate_answers
from engine.synthetic import write_dataset

torch = pytest.importorskip("torch")


def test_batched_answers_are_the_answers_given_one_prompt_at_a_time(
    tiny_model: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, local_files_only=True)
    examples, _ = load_examples(write_dataset(tmp_path / "chat.jsonl", EVAL_BATCH + 3, seed=5))
    lengths = {
        len(
            tokenizer.apply_chat_template(
                e.messages()[:1], add_generation_prompt=True, return_dict=True
            )["input_ids"]
        )
        for e in examples
    }
    assert len(lengths) > 1, "prompts of one length would not test the padding"
    together = generate_answers(model, tokenizer, examples, 12, "cpu")
    alone = [generate_answers(model, tokenizer, [e], 12, "cpu")[0] for e in examples]
    assert together == alone
    assert any(together)
