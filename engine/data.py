"""Training data: JSONL in four formats, checked line by line, tokenised, split and packed.

Formats, detected per file from its first example: chat `{"messages": [...]}`, instruction
`{"instruction", "input"?, "output"}`, completion `{"prompt", "completion"}`, raw `{"text"}`.
Every problem names file:line before any training starts; with `skip_bad` a bad example is
counted and reported instead. The loss is masked to the answer tokens; the train/validation
split is by a hash of each example's content, so it is stable as a dataset grows.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import EngineError
from forge_api.examples import ExampleFormat as Format
from forge_api.examples import detect_format, record_problem

IGNORE = -100
T = TypeVar("T")


def _example_key(item: Any) -> str:
    return str(item.key())


class DataError(EngineError):
    """A dataset problem; the message starts with file:line."""


@dataclass
class Example:
    format: Format
    record: dict[str, Any]
    where: str  # file:line

    def messages(self) -> list[dict[str, str]]:
        if self.format == "chat":
            return list(self.record["messages"])
        if self.format == "instruction":
            prompt = self.record["instruction"]
            if self.record.get("input"):
                prompt += "\n\n" + self.record["input"]
            return [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": self.record["output"]},
            ]
        raise ValueError(f"{self.format} examples have no messages")

    def key(self) -> str:
        return json.dumps(self.record, sort_keys=True, ensure_ascii=False)


@dataclass
class DataReport:
    """What was read: examples per format and per file, and what was skipped and why."""

    examples: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_at: list[str] = field(default_factory=list)

    def skip(self, where: str, reason: str) -> None:
        self.skipped[reason] += 1
        if len(self.skipped_at) < 20:
            self.skipped_at.append(f"{where}: {reason}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "formats": dict(self.formats),
            "skipped": dict(self.skipped),
            "skipped_at": self.skipped_at,
        }


def dataset_files(path: Path, inside: Path | None = None) -> list[Path]:
    """The JSONL files of a dataset (a file, or a folder's files in name order).

    With `inside` (the data dir), every file is resolved first and refused if it leads out of
    it: a symbolic link placed in a dataset folder must not make a job read a file its owner
    never imported (the daemon checks the dataset's own path at submit; this checks each file
    at the moment it is read).
    """
    if path.is_dir():
        files = sorted(path.rglob("*.jsonl"))
        if not files:
            raise DataError(f"{path}: no .jsonl files in this folder")
    elif not path.exists():
        raise DataError(f"{path}: no such file")
    else:
        files = [path]
    if inside is not None:
        root = inside.resolve()
        for file in files:
            target = file.resolve()
            if not target.is_relative_to(root):
                raise DataError(
                    f"{file}: leads to {target}, outside the data dir ({root}); a job reads "
                    "only files in the data dir: import that file with `forge datasets import`"
                )
    return files


def load_examples(
    path: Path, *, skip_bad: bool = False, inside: Path | None = None
) -> tuple[list[Example], DataReport]:
    """Every example of a JSONL file (or a folder of them), checked; raises DataError.

    `inside`: refuse files that resolve outside this folder (see `dataset_files`).
    """
    report = DataReport()
    examples = [
        ex for file in dataset_files(path, inside) for ex in file_examples(file, report, skip_bad)
    ]
    if not examples:
        raise DataError(f"{path}: no usable examples")
    report.examples = len(examples)
    return examples, report


def count_examples(file: Path) -> int:
    """How many examples a JSONL file holds, each checked exactly as training checks it (the
    daemon's `datasets.import` runs it on the person's own file, so an error names their file and
    line); streams, so a large file is never held in memory."""
    report = DataReport()
    count = sum(1 for _ in file_examples(file, report, skip_bad=False))
    if count == 0:
        raise DataError(f"{file}: no examples (the file is empty)")
    return count


def file_examples(file: Path, report: DataReport, skip_bad: bool) -> Iterator[Example]:
    """The examples of one file, in order, counted into `report`; one format per file."""
    fmt: Format | None = None
    with file.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            where = f"{file}:{number}"
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("each line must be a JSON object")
                found = detect_format(record)
                if found is None:
                    raise ValueError(
                        "unknown format: expected messages, instruction/output, "
                        "prompt/completion or text"
                    )
                if fmt is None:
                    fmt = found
                elif found != fmt:
                    raise ValueError(f"a {found} example in a {fmt} file")
                problem = record_problem(found, record)
                if problem:
                    raise ValueError(problem)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                if not skip_bad:
                    raise DataError(f"{where}: not valid JSON: {exc}") from exc
                report.skip(where, "not valid JSON")
                continue
            except (ValueError, RecursionError) as exc:
                if not skip_bad:
                    raise DataError(f"{where}: {exc}") from exc
                report.skip(where, str(exc))
                continue
            report.formats[found] += 1
            yield Example(found, record, where)
    if fmt is None and not skip_bad:
        raise DataError(f"{file}: no examples (the file is empty)")


def split(
    items: Sequence[T], val_fraction: float, key: Callable[[T], str] = _example_key
) -> tuple[list[T], list[T]]:
    """Validation = items whose content hash falls under `val_fraction`; stable as data grows.

    With at least two items, each side gets at least one. Training splits the examples that
    fit `max_seq_len` (see `fitting`), so a long one never leaves validation empty.
    """

    def bucket(item: T) -> float:
        digest = hashlib.sha256(key(item).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    scored = sorted((bucket(item), i) for i, item in enumerate(items))
    val_idx = {i for score, i in scored if score < val_fraction}
    if val_fraction > 0 and len(items) >= 2:
        if not val_idx:
            val_idx = {scored[0][1]}
        if len(val_idx) == len(items):
            val_idx.discard(scored[-1][1])
    train = [item for i, item in enumerate(items) if i not in val_idx]
    val = [item for i, item in enumerate(items) if i in val_idx]
    return train, val


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    where: str

    @property
    def trained_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def tokenize(ex: Example, tokenizer: Any) -> Tokenized:
    """Token ids and labels; labels are IGNORE everywhere but the answer."""
    if ex.format in ("chat", "instruction"):
        return _tokenize_chat(ex, tokenizer)
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if ex.format == "completion":
        prompt = tokenizer(ex.record["prompt"], add_special_tokens=False)["input_ids"]
        answer = tokenizer(ex.record["completion"], add_special_tokens=False)["input_ids"] + eos
        return Tokenized(prompt + answer, [IGNORE] * len(prompt) + answer, ex.where)
    ids = tokenizer(ex.record["text"], add_special_tokens=False)["input_ids"] + eos
    return Tokenized(ids, list(ids), ex.where)


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def _tokenize_chat(ex: Example, tokenizer: Any) -> Tokenized:
    """Render the conversation with the tokenizer's chat template; learn each assistant turn.

    Each assistant turn's tokens are those between the rendering of the conversation up to
    its prompt and the rendering through the turn, which works with any template.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{ex.where}: chat data needs a tokenizer with a chat template")
    messages = ex.messages()
    full = _render(tokenizer, messages, generation_prompt=False)
    labels = [IGNORE] * len(full)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_render(tokenizer, messages[:i], generation_prompt=True))
        end = len(_render(tokenizer, messages[: i + 1], generation_prompt=False))
        labels[start:end] = full[start:end]
    return Tokenized(full, labels, ex.where)


def fitting(
    examples: list[Example], tokenizer: Any, max_len: int, report: DataReport, skip_bad: bool
) -> list[tuple[Example, Tokenized]]:
    """Each example with its tokens, for those that fit `max_len` and have an answer to learn.

    A longer one is an error naming file:line, or with `skip_bad` a counted skip.
    """
    out = []
    for ex in examples:
        tok = tokenize(ex, tokenizer)
        if len(tok.input_ids) > max_len:
            reason = f"{len(tok.input_ids)} tokens, longer than max_seq_len {max_len}"
            if not skip_bad:
                raise DataError(f"{ex.where}: {reason} (raise max_seq_len or skip_bad_examples)")
            report.skip(ex.where, "longer than max_seq_len")
            continue
        if tok.trained_tokens == 0:
            report.skip(ex.where, "no answer tokens")
            continue
        out.append((ex, tok))
    if not out:
        raise DataError(
            f"none of the {len(examples)} examples fits max_seq_len {max_len}; raise it"
        )
    return out


@dataclass
class Row:
    """One packed row: several examples back to back, each with positions from 0."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]

    @property
    def tokens(self) -> int:
        return len(self.input_ids)


def pack(items: list[Tokenized], max_len: int) -> list[Row]:
    """First-fit-decreasing into rows of at most max_len tokens (no padding inside a row).

    Positions restart at 0 for each example, so attention never crosses examples, and the
    first label of each example is ignored (it would be predicted from the one before).
    """
    rows: list[list[Tokenized]] = []
    space: list[int] = []
    for item in sorted(items, key=lambda t: len(t.input_ids), reverse=True):
        n = len(item.input_ids)
        for r, free in enumerate(space):
            if free >= n:
                rows[r].append(item)
                space[r] -= n
                break
        else:
            rows.append([item])
            space.append(max_len - n)
    packed = []
    for row in rows:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for item in row:
            ids += item.input_ids
            labels += [IGNORE, *item.labels[1:]]
            positions += list(range(len(item.input_ids)))
        packed.append(Row(ids, labels, positions))
    return packed


def unpacked(items: list[Tokenized]) -> list[Row]:
    """One example per row (packing off)."""
    return [Row(t.input_ids, [IGNORE, *t.labels[1:]], list(range(len(t.input_ids)))) for t in items]
