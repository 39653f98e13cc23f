"""Building one versioned dataset for a source: run the builders, drop what holds a secret,
de-duplicate, write.

Output: `<datasets dir>/<source>/v<N>/` with one `<builder>.jsonl` per builder (the engine takes
one format per file and a folder of files as one dataset) and `card.json`, written to a `.partial`
folder and renamed, so a half-written dataset is never taken for one. The card says how many
examples each builder gave, roughly how many tokens, what was skipped and why, and how many
secrets were kept out (files left out, examples dropped, and the kinds found).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.builders import (
    chat,
    code_examples,
    commit_examples,
    doc_examples,
    doc_sections,
    example_tokens,
    jsonl_examples,
)
from agent.commit_stream import NO_FILE
from agent.kingfisher import KingfisherScan
from agent.redaction import Redactor
from agent.repo_files import Selection, select_files, tracked_blobs
from agent.safe_git import changed_paths, open_repo
from agent.secrets import find_secrets
from agent.token_fit import Fit, load_counter
from forge_api.examples import detect_format
from forge_api.names import MISSION_MAX_SEQ_LEN
from forge_api.schema import ALL_BUILDERS

BUILDERS = ALL_BUILDERS
# (heading, section text) → (grounded question/answer pairs, how many were rejected)
Synthesizer = Callable[[str, str], tuple[list[tuple[str, str]], int]]


@dataclass
class Built:
    path: Path
    card: dict[str, Any]


def _texts(example: dict[str, Any]) -> list[str]:
    if "messages" in example:
        return [m["content"] for m in example["messages"]]
    keys = ("text", "prompt", "completion", "instruction", "input", "output")
    return [example[k] for k in keys if isinstance(example.get(k), str)]


def _clean_example(
    redactor: Redactor, builder: str, example: dict[str, Any]
) -> tuple[dict[str, Any] | None, Counter[str], int]:
    """The last gate, whichever builder made the example: the whole example scanned (a secret
    may be split between its texts); where something is found, each text redacted and the whole
    scanned again. (The example, or None where it must be dropped; every kind of secret found;
    how many values were redacted.)"""
    name = f"{builder}-example.txt"
    whole = redactor.clean("\n".join(_texts(example)), name)
    if not whole.found or whole.text is None:
        return (example if whole.text is not None else None), whole.found, 0
    found: Counter[str] = Counter(whole.found)
    redacted = 0

    def clean(text: str) -> str | None:
        nonlocal redacted
        cleaned = redactor.clean(text, name)
        found.update(cleaned.found)
        redacted += cleaned.redacted
        return cleaned.text

    if "messages" in example:
        messages = [{**m, "content": clean(m["content"])} for m in example["messages"]]
        out: dict[str, Any] = {**example, "messages": messages}
        texts = [m["content"] for m in messages]
    else:
        out = {k: clean(v) if isinstance(v, str) else v for k, v in example.items()}
        texts = [v for v in out.values() if isinstance(v, str) or v is None]
    if any(t is None for t in texts):
        return None, found, 0
    if left := find_secrets("\n".join(_texts(out)), name):
        return None, found + left, 0
    return out, found, redacted


SAMPLES = 2
"""Examples of each kind shown on the card, so a person sees what the model will learn."""
SAMPLE_CHARS = 600


SAFE_LABEL = re.compile(r"(#+ |diff --git |[Ff]ile:? )?[\w./ -]{1,100}")
"""A first line that names the example (a heading, a path, a diff's header) and can hold no
secret value: no quotes, no `=`, no `:` after the start."""


DIFF_HEADER = re.compile(r"^--- (?:a/)?([\w./-]{1,200})\n\+\+\+ (?:b/)?([\w./-]{1,200})$", re.M)
"""A diff's pair of file lines (`--- app/old.py`, `+++ app/main.py`): the file a commit's example
changes, by its new name, or its old one where it was deleted (`+++ /dev/null`)."""


def _label(builder: str, example: dict[str, Any]) -> str:
    """What the card calls a dropped example: its builder, and its first line where that line
    only names it (else its place in the build), never any text that could be the secret."""
    texts = _texts(example)
    named = (
        m.group(2) if m.group(2) != NO_FILE else m.group(1)
        for t in texts
        for m in DIFF_HEADER.finditer(t)
    )
    changed = list(dict.fromkeys(named))
    if changed:  # a commit's example: the files its diff changes
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"{builder}: the change to {', '.join(changed[:3])}{more}"
    first = texts[0].split("\n", 1)[0].strip() if texts else ""
    return f"{builder}: {first}" if SAFE_LABEL.fullmatch(first) else f"{builder} example"


def _sample(example: dict[str, Any]) -> dict[str, Any]:
    """An example for the card, each text cut to SAMPLE_CHARS."""

    def cut(text: str) -> str:
        return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + " […]"

    if "messages" in example:
        return {"messages": [{**m, "content": cut(m["content"])} for m in example["messages"]]}
    return {k: cut(v) if isinstance(v, str) else v for k, v in example.items()}


def _bucket(path: str) -> float:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") / 2**64


def near_duplicate_key(example: dict[str, Any]) -> str:
    """Equal for examples that differ only in case, whitespace and punctuation, and for code
    chunks that differ only in the path heading them (a file copied elsewhere)."""
    texts = _texts(example)
    if "text" in example and texts[0].startswith("# "):
        texts = [texts[0].split("\n", 1)[-1]]
    joined = " ".join(texts).lower()
    return hashlib.sha256(re.sub(r"[\W_]+", " ", joined).strip().encode()).hexdigest()


@dataclass
class _Made:
    """What the builders made from a repository, before the secret gate."""

    examples: list[tuple[str, dict[str, Any]]]
    per_builder: dict[str, int]
    skipped: Counter[str]
    replayed: int
    selection: Selection


@dataclass
class _Gated:
    """What the secret gate kept, per output file, and what it said about the rest."""

    kept: dict[str, list[dict[str, Any]]]
    secrets: dict[str, Any]


def build_dataset(
    repo_path: Path,
    out_root: Path,
    source_name: str,
    *,
    since: str | None = None,
    builders: tuple[str, ...] = BUILDERS,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    replay_fraction: float = 0.1,
    synthesize: Synthesizer | None = None,
    fit: Fit | None = None,
) -> Built:
    """Build the next version of `source_name`'s dataset from `repo_path` (a git work tree).

    With `since` (a commit), the files changed and commits made after it, plus a replay sample:
    about `replay_fraction` of the unchanged files, chosen by a hash of their path (so the
    same ones each time), so the new adapter does not forget the rest of the repository.
    With `synthesize` (the LLM advisor), each documentation section also yields the
    question/answer pairs it returns (it keeps only grounded ones and counts the rest).
    `fit` sizes every example to the base model's `max_seq_len` in its own tokens (default:
    MISSION_MAX_SEQ_LEN estimated tokens, for a dataset built with no model in mind).

    Kingfisher's pass over the history runs in its own process meanwhile; every example then
    has the values it found, and those the second pass finds, redacted (`agent.redaction`).
    """
    fit = fit or Fit(load_counter(None), MISSION_MAX_SEQ_LEN)
    repo = open_repo(repo_path)
    head = repo.head.commit.hexsha
    rev = f"{since}..{head}" if since else head
    messages = repo.git.log("--format=%B", "--no-show-signature", rev)
    first_pass = KingfisherScan(Path(repo.git_dir), messages, since)
    try:
        made = _make_examples(
            repo,
            repo_path.name,
            rev,
            since,
            builders,
            include,
            exclude,
            replay_fraction,
            synthesize,
            fit,
        )
    finally:
        secret_pass = first_pass.result()
    gated = _secret_gate(made, Redactor(secret_pass.values))
    gated.secrets["first_pass"] = f"kingfisher {secret_pass.status}"
    return _write(repo_path, out_root, source_name, head, since, fit, made, gated)


def _make_examples(
    repo: Any,
    project: str,
    rev: str,
    since: str | None,
    builders: tuple[str, ...],
    include: list[str] | None,
    exclude: list[str] | None,
    replay_fraction: float,
    synthesize: Synthesizer | None,
    fit: Fit,
) -> _Made:
    """Every builder's examples (files of the head commit, commits of `rev`), unfiltered."""
    head = repo.head.commit.hexsha
    only: set[str] | None = None
    replayed = 0
    if since:
        changed = changed_paths(repo, since, head)
        older = {b.path for b in tracked_blobs(repo.commit(head).tree)} - changed
        replay = {p for p in older if _bucket(p) < replay_fraction}
        replayed = len(replay)
        only = changed | replay
    selection = select_files(repo, head, include=include, exclude=exclude, only=only)
    per_builder: dict[str, int] = {}
    skipped: Counter[str] = Counter(selection.skipped)
    examples: list[tuple[str, dict[str, Any]]] = []
    for name in builders:
        if name == "code":
            made, dropped = code_examples(selection.files, fit)
        elif name == "docs":
            made, dropped = doc_examples(selection.files, project, fit)
        elif name == "jsonl":
            made, dropped = jsonl_examples(selection.files, fit)
        elif name == "commits":
            made, dropped = commit_examples(repo, rev, fit, include, exclude)
        else:
            raise ValueError(f"unknown builder {name!r}; known: {', '.join(BUILDERS)}")
        per_builder[name] = len(made)
        skipped.update(dropped)
        examples += [(name, example) for example in made]
    if synthesize is not None:
        sections, _ = doc_sections(selection.files)
        pairs = 0
        for _path, heading, body in sections:
            grounded_pairs, rejected = synthesize(heading, body)
            skipped["qa: not grounded in its section"] += rejected
            fitting = [
                (q, a)
                for q, a in grounded_pairs
                if example_tokens(chat(q, a), fit) <= fit.max_seq_len
            ]
            skipped["qa: longer than max_seq_len"] += len(grounded_pairs) - len(fitting)
            examples += [("qa", chat(q, a)) for q, a in fitting]
            pairs += len(fitting)
        per_builder["qa"] = pairs
    return _Made(examples, per_builder, skipped, replayed, selection)


def _secret_gate(made: _Made, redactor: Redactor) -> _Gated:
    """Each example redacted or dropped, then near-duplicates left out; the card's `secrets`."""
    selection, skipped = made.selection, made.skipped
    found = Counter(selection.secrets)
    dropped: list[dict[str, Any]] = []
    redacted: list[dict[str, Any]] = list(selection.redacted)
    values = sum(int(r["why"].split(" ", 1)[0]) for r in redacted)
    kept: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for builder, raw in made.examples:
        clean, kinds, n = _clean_example(redactor, builder, raw)
        found.update(kinds)
        if clean is None:
            dropped.append(
                {"example": _label(builder, raw), "why": f"holds {', '.join(sorted(kinds))}"}
            )
            skipped["holds a secret"] += 1
            continue
        if n:
            values += n
            why = f"{n} redacted: {', '.join(sorted(kinds))}"
            redacted.append({"example": _label(builder, clean), "why": why})
        key = near_duplicate_key(clean)
        if key in seen:
            skipped["near-duplicate"] += 1
            continue
        seen.add(key)
        # One file per format: the jsonl builder passes through whatever formats it found.
        name = builder if builder != "jsonl" else f"jsonl-{detect_format(clean)}"
        kept.setdefault(name, []).append(clean)
    secrets = {
        "files_skipped": skipped.get("credential file", 0)
        + skipped.get("diff of a credential file left out", 0)
        + skipped.get("file holds a secret", 0),
        "examples_dropped": len(dropped),
        "found": dict(found),
        "left_out": selection.left_out,
        "dropped": dropped,
        "redacted": redacted,
        "values_redacted": values,
    }
    return _Gated(kept, secrets)


def _write(
    repo_path: Path,
    out_root: Path,
    source_name: str,
    head: str,
    since: str | None,
    fit: Fit,
    made: _Made,
    gated: _Gated,
) -> Built:
    """The dataset's next version folder, written whole or not at all, with its card."""
    kept = gated.kept
    every = [e for examples in kept.values() for e in examples]
    source_dir = out_root / source_name
    source_dir.mkdir(parents=True, exist_ok=True)
    versions = [int(p.name[1:]) for p in source_dir.glob("v[0-9]*") if p.name[1:].isdigit()]
    version = max(versions, default=0) + 1
    final = source_dir / f"v{version}"
    partial = source_dir / f"v{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # torn by a build killed mid-write
    partial.mkdir()
    for builder, examples in kept.items():
        with (partial / f"{builder}.jsonl").open("w", encoding="utf-8") as fh:
            for example in examples:
                fh.write(json.dumps(example, ensure_ascii=False) + "\n")
    card = {
        "source": source_name,
        "repository": str(repo_path),
        "version": version,
        "commit": head,
        "since": since,
        "built_at": time.time(),
        "examples": len(every),
        "approx_tokens": sum(fit.counter.count_many([t for e in every for t in _texts(e)])),
        "tokenizer": fit.counter.name,
        "max_seq_len": fit.max_seq_len,
        "per_builder": made.per_builder,
        "replayed_files": made.replayed,
        "kept_per_builder": {name: len(examples) for name, examples in kept.items()},
        "skipped": dict(made.skipped),
        "samples": {name: [_sample(e) for e in ex[:SAMPLES]] for name, ex in kept.items()},
        "secrets": gated.secrets,
    }
    (partial / "card.json").write_text(json.dumps(card, indent=2))
    os.replace(partial, final)
    return Built(final, card)
