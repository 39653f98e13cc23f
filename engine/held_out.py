"""The held-out sets an eval scores besides the new material, so a mission's gate sees what an
adapter costs as well as what it learned:

* `old_material`: the validation examples of the source's earlier datasets. The split is by a
  hash of each example's content, so an example held out once is held out in every later
  version that has it: no later mission trains on it.
* `general`: the base model's own greedy answers to general prompts we ship
  (`engine/assets/general_prompts.txt`: explain, summarise, rewrite, small code tasks in several
  languages, plain chat; no data downloaded). The adapter's loss on what the base itself says
  is a measure of how far it has moved from the base on everything else. Built once per base
  model and prompt set, then read from the data dir's `general-sets/`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from engine.data import Example, Row, Tokenized, fitting, load_examples, pack, split
from engine.events import Emitter
from forge_api.names import SET_ANSWER_TOKENS

PROMPTS = Path(__file__).parent / "assets" / "general_prompts.txt"
HELD_OUT_PROMPTS = 50
"""The first prompts of the file: the `general` held-out set. The rest are kept for replay."""


def sets_folder(datasets_dir: str) -> Path:
    """Where the general and replay sets of each base are kept: `general-sets/` in the data
    dir, beside `datasets/` (a job knows the datasets dir from its spec)."""
    return Path(datasets_dir).parent / "general-sets"


def general_prompts() -> list[str]:
    lines = PROMPTS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _as_chat(prompt: str, answer: str = "") -> Example:
    record = {"messages": [{"role": "user", "content": prompt}]}
    if answer:
        record["messages"].append({"role": "assistant", "content": answer})
    return Example("chat", record, "general prompts")


def _base_answers(
    model: Any,
    tokenizer: Any,
    base: Path,
    prompts: list[str],
    device: str,
    cache: Path,
    events: Emitter,
    tag: str,
    max_new_tokens: int,
) -> Path:
    """The base's greedy answers to `prompts` as a chat JSONL in `cache`, made with `model` (the
    base, or an adapter switched off) unless this base and these prompts have one already."""
    from engine.evaluate import generate_answers

    path = set_path(cache, tag, base, prompts, max_new_tokens)
    if path.exists():
        return path
    events.log(
        f"{tag} set: the base's own answers to {len(prompts)} general prompts, made once for"
        f" {base.name} (up to {max_new_tokens} tokens each)"
    )
    chats = [_as_chat(p) for p in prompts]
    answers = generate_answers(model, tokenizer, chats, max_new_tokens, device)
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as fh:
        for prompt, answer in zip(prompts, answers, strict=True):
            if answer.strip():
                fh.write(json.dumps(_as_chat(prompt, answer.strip()).record) + "\n")
    os.replace(partial, path)
    return path


def set_path(cache: Path, tag: str, base: Path, prompts: list[str], max_new_tokens: int) -> Path:
    """Where the base's answers to `prompts` are kept: one file per base, prompts and length."""
    digest = hashlib.sha256(
        json.dumps([str(base.resolve()), prompts, max_new_tokens]).encode()
    ).hexdigest()[:16]
    return cache / f"{tag}-{base.name}-{digest}.jsonl"


def answers_to_make(datasets_dir: str, base: Path, general: bool, replay: bool) -> tuple[int, int]:
    """How many answers the base has still to write for a job's general held-out set and its
    replay set (0 where they are made already): a mission's time plan counts them, once."""
    cache, prompts = sets_folder(datasets_dir), general_prompts()
    held, rest = prompts[:HELD_OUT_PROMPTS], prompts[HELD_OUT_PROMPTS:]
    return (
        len(held)
        if general and not set_path(cache, "general", base, held, SET_ANSWER_TOKENS).exists()
        else 0,
        len(rest)
        if replay and not set_path(cache, "replay", base, rest, SET_ANSWER_TOKENS).exists()
        else 0,
    )


def general_set(
    model: Any,
    tokenizer: Any,
    base: Path,
    device: str,
    cache: Path,
    events: Emitter,
    max_new_tokens: int = SET_ANSWER_TOKENS,
) -> Path:
    """The `general` held-out set: the base's answers to the first prompts of the file."""
    prompts = general_prompts()[:HELD_OUT_PROMPTS]
    return _base_answers(
        model, tokenizer, base, prompts, device, cache, events, "general", max_new_tokens
    )


def replay_rows(
    model: Any,
    tokenizer: Any,
    base: Path,
    device: str,
    cache: Path,
    events: Emitter,
    *,
    share: float,
    train_rows: int,
    max_len: int,
) -> list[Row]:
    """Self-replay against forgetting: rows of the base's own answers to the other general
    prompts (never the held-out ones), about `share` of the `train_rows` the job trains on, made
    with the adapter switched off (a continued adapter is not the base)."""
    prompts = general_prompts()[HELD_OUT_PROMPTS:]
    switched_off = model.disable_adapter() if hasattr(model, "disable_adapter") else None
    with switched_off or contextlib.nullcontext():
        path = _base_answers(
            model, tokenizer, base, prompts, device, cache, events, "replay", SET_ANSWER_TOKENS
        )
    rows = set_rows([str(path)], tokenizer, max_len, 0, None)
    want = min(len(rows), max(1, round(share * train_rows)))
    return rows[:want]


def set_rows(
    datasets: list[str],
    tokenizer: Any,
    max_len: int,
    val_fraction: float,
    inside: str | None,
) -> list[Row]:
    """The held-out rows of `datasets` together (`val_fraction` 0: every example), each example
    once however many of them hold it, packed as the eval packs rows."""
    seen: set[str] = set()
    held: list[Tokenized] = []
    for dataset in datasets:
        examples, report = load_examples(
            Path(dataset).expanduser(), skip_bad=True, inside=Path(inside) if inside else None
        )
        pairs = fitting(examples, tokenizer, max_len, report, True)
        if val_fraction:
            _, pairs = split(pairs, val_fraction, key=lambda pair: pair[0].key())
        for example, tokens in pairs:
            if example.key() not in seen:
                seen.add(example.key())
                held.append(tokens)
    return pack(held, max_len) if held else []
