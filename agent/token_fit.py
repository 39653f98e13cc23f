"""Making every example fit the base model's context, counted in that model's own tokens.

A builder that measured in characters made chunks that were short in one tokenizer and too long
in another (a 386-token chunk for a 384-token row), and a job failed for it. Here the count comes
from the model folder's `tokenizer.json` through the `tokenizers` library (light, no torch), so
the daemon can build datasets without loading a model; where a folder has no such file, a
conservative estimate (one token for every three bytes) errs on the short side.

Chat examples leave `CHAT_MARGIN` tokens for what the chat template wraps around the turns
(role markers, a default system prompt); the engine checks the exact rendering and skips, and
counts, anything that still does not fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAT_MARGIN = 64
"""Tokens a chat template may add around a user and an assistant turn."""
TEXT_MARGIN = 4
"""Tokens added to a raw-text example: the end-of-text marker, with room to spare."""
BYTES_PER_TOKEN = 3
"""The estimate without a tokenizer: fewer bytes per token than BPE tokenizers give for code or
English, so estimated examples come out shorter than the limit, never longer."""


class TokenCounter:
    """Counts tokens of text with a model's tokenizer, or estimates them without one."""

    def __init__(self, tokenizer: Any | None, name: str) -> None:
        self.tokenizer = tokenizer
        self.name = name

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: list[str]) -> list[int]:
        if self.tokenizer is None:
            return [math.ceil(len(t.encode("utf-8")) / BYTES_PER_TOKEN) for t in texts]
        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) for e in encoded]


def load_counter(model_dir: Path | None) -> TokenCounter:
    """The counter for a base model folder: its `tokenizer.json`, else the estimate."""
    if model_dir is not None and (model_dir / "tokenizer.json").is_file():
        try:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            return TokenCounter(tokenizer, f"{model_dir.name}'s tokenizer")
        except (ImportError, OSError, ValueError, RuntimeError):
            pass
    return TokenCounter(None, f"an estimate of {BYTES_PER_TOKEN} bytes per token")


@dataclass(frozen=True)
class Fit:
    """How long an example may be, and how to count: what every builder sizes its output by."""

    counter: TokenCounter
    max_seq_len: int

    @property
    def text_budget(self) -> int:
        return self.max_seq_len - TEXT_MARGIN

    @property
    def chat_budget(self) -> int:
        """Tokens for the content of a user turn and an assistant turn together."""
        return self.max_seq_len - CHAT_MARGIN


def _split_long_line(line: str, tokens: int, room: int) -> list[str]:
    """A line longer than a whole chunk, cut by characters into pieces of about `room` tokens."""
    pieces = math.ceil(tokens / max(room, 1) * 1.2) + 1
    size = max(1, math.ceil(len(line) / pieces))
    return [line[i : i + size] for i in range(0, len(line), size)]


def chunk_lines(text: str, header: str, budget: int, counter: TokenCounter) -> list[str]:
    """`text` in chunks of whole lines, each `header` + lines, each at most `budget` tokens.

    A single line longer than a chunk is cut by characters. Each chunk is counted again whole
    (per-line counts do not always add up across line breaks) and gives lines back until it fits.
    """
    room = budget - counter.count(header)
    if room <= 0:
        return []
    raw = text.splitlines(keepends=True)
    lines: list[str] = []
    for line, n in zip(raw, counter.count_many(raw), strict=True):
        lines += [line] if n <= room else _split_long_line(line, n, room)
    counts = counter.count_many(lines) if lines else []
    chunks: list[str] = []
    i = 0
    while i < len(lines):
        j, used = i, 0
        while j < len(lines) and (j == i or used + counts[j] <= room):
            used += counts[j]
            j += 1
        while j - i > 1 and counter.count(header + "".join(lines[i:j])) > budget:
            j -= 1
        body = "".join(lines[i:j])
        while body and counter.count(header + body) > budget:
            body = body[: len(body) * 9 // 10]
        if body.strip():
            chunks.append(header + body)
        i = j
    return chunks


def cut_to_fit(text: str, budget: int, counter: TokenCounter, marker: str) -> str:
    """`text` whole if it fits in `budget` tokens, else cut at a line break and ended by
    `marker` (which says what was left out), the two together within the budget."""
    if counter.count(text) <= budget:
        return text
    lines = text.splitlines(keepends=True)
    counts = counter.count_many(lines)
    room = budget - counter.count(marker) - 1
    kept: list[str] = []
    used = 0
    for line, n in zip(lines, counts, strict=True):
        if used + n > room:
            break
        kept.append(line)
        used += n
    out = "".join(kept)
    while out and counter.count(out + marker) > budget:
        out = out[: len(out) * 9 // 10]
    dropped = len(lines) - len(kept)
    return out + marker.format(lines=dropped)
