"""Data: format detection, file:line errors, skip counting, answer-only labels, the stable split,
and packing that never lets one example attend to another."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from engine.data import (
    IGNORE,
    DataError,
    fitting,
    load_examples,
    pack,
    split,
    tokenize,
    unpacked,
)
from engine.synthetic import write_dataset


def write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_four_formats_are_detected(tmp_path: Path) -> None:
    files = {
        "chat": {
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
        },
        "instruction": {"instruction": "do", "input": "x", "output": "done"},
        "completion": {"prompt": "1 + 1 =", "completion": " 2"},
        "text": {"text": "plain text"},
    }
    for fmt, record in files.items():
        examples, report = load_examples(write(tmp_path / f"{fmt}.jsonl", [record, record]))
        assert [e.format for e in examples] == [fmt, fmt]
        assert report.formats == {fmt: 2}


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (['{"text": "a"}', '{"text": '], ":2: not valid JSON"),
        (['{"instruction": "x"}'], ":1: missing or empty field 'output'"),
        (['{"messages": [{"role": "user", "content": "q"}]}'], ":1: no assistant message"),
        (['{"messages": [{"role": "robot", "content": "q"}]}'], ":1: messages[0].role must be"),
        (
            ['{"text": "a"}', '{"prompt": "p", "completion": "c"}'],
            ":2: a completion example in a text file",
        ),
        (['{"colour": "red"}'], ":1: unknown format"),
        (["[1, 2]"], ":1: each line must be a JSON object"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, lines: list[str], expected: str) -> None:
    path = write(tmp_path / "d.jsonl", lines)
    with pytest.raises(DataError) as err:
        load_examples(path)
    assert str(err.value).startswith(str(path)) and expected in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="no examples"):
        load_examples(path)


def test_skip_bad_counts_and_reports(tmp_path: Path) -> None:
    lines = ['{"text": "a"}', "{broken", '{"text": ""}', '{"text": "b"}']
    path = write(tmp_path / "d.jsonl", lines)
    examples, report = load_examples(path, skip_bad=True)
    assert [e.record["text"] for e in examples] == ["a", "b"]
    assert report.skipped == {"not valid JSON": 1, "missing or empty field 'text'": 1}
    assert report.skipped_at[0].startswith(f"{path}:2")


def test_labels_cover_only_the_answers(tokenizer: Any, tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": "4."},
            {"role": "user", "content": "And 3 + 3?"},
            {"role": "assistant", "content": "6."},
        ]
    }
    (ex,), _ = load_examples(write(tmp_path / "c.jsonl", [record]))
    tok = tokenize(ex, tokenizer)
    learned = tokenizer.decode([t for t in tok.labels if t != IGNORE])
    assert learned == "4.<|end|>\n6.<|end|>\n"
    completion = {"prompt": "1 + 1 =", "completion": " 2"}
    (comp,), _ = load_examples(write(tmp_path / "p.jsonl", [completion]))
    tok = tokenize(comp, tokenizer)
    assert tokenizer.decode([t for t in tok.labels if t != IGNORE]) == " 2<|end|>"


def test_too_long_is_an_error_or_a_counted_skip(tokenizer: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [{"text": "short"}, {"text": "word " * 200}])
    examples, report = load_examples(path)
    with pytest.raises(DataError, match=rf"{path}:2: \d+ tokens, longer than max_seq_len 64"):
        fitting(examples, tokenizer, 64, report, skip_bad=False)
    kept = fitting(examples, tokenizer, 64, report, skip_bad=True)
    assert len(kept) == 1 and report.skipped == {"longer than max_seq_len": 1}


def test_split_is_deterministic_and_stable_as_data_grows(tmp_path: Path) -> None:
    small, _ = load_examples(write_dataset(tmp_path / "a.jsonl", 200, seed=1))
    big, _ = load_examples(write_dataset(tmp_path / "b.jsonl", 400, seed=1))  # a superset
    _, val_small = split(small, 0.1)
    _, val_big = split(big, 0.1)
    assert 5 <= len(val_small) <= 40
    keys_small = {e.key() for e in val_small}
    assert keys_small <= {e.key() for e in val_big}
    assert split(small, 0.1)[1] == val_small


def test_packing_keeps_examples_apart(tokenizer: Any, tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from engine.batching import collate, loss_sum

    examples, report = load_examples(write_dataset(tmp_path / "d.jsonl", 12, seed=3))
    items = [tok for _, tok in fitting(examples, tokenizer, 256, report, skip_bad=False)]
    rows = pack(items, 256)
    assert len(rows) < len(items)  # several examples share a row
    assert sum(r.tokens for r in rows) == sum(len(t.input_ids) for t in items)
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    row = max(rows, key=lambda r: r.position_ids.count(0))
    with torch.no_grad():
        batch = collate([row], 0, "cpu")
        packed = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits[0]
        starts = [i for i, p in enumerate(row.position_ids) if p == 0] + [row.tokens]
        for a, b in itertools.pairwise(starts):
            alone = model(input_ids=torch.tensor([row.input_ids[a:b]])).logits[0]
            assert torch.allclose(packed[a:b], alone, atol=1e-5)
        # The loss training uses: the packed row's equals the examples' summed alone.
        packed_loss, packed_count = loss_sum(model, collate(rows, 0, "cpu"))
        alone_sum, alone_count = 0.0, 0
        for single in unpacked(items):
            s, n = loss_sum(model, collate([single], 0, "cpu"))
            alone_sum += float(s)
            alone_count += n
    assert packed_count == alone_count
    assert abs(float(packed_loss) - alone_sum) < 1e-3 * alone_count
