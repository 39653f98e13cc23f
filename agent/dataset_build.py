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
from agent.repo_files import select_files, tracked_blobs
from agent.safe_git import changed_paths, open_repo
from agent.secrets import find_secrets
from agent.token_fit import Fit, load_counter
from forge_api.examples import detect_format
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


def _secret_kinds(builder: str, example: dict[str, Any]) -> Counter[str]:
    """The last gate: what secrets an example holds, whichever builder made it."""
    return find_secrets("\n".join(_texts(example)), f"{builder}-example.txt")


SAMPLES = 2
"""Examples of each kind shown on the card, so a person sees what the model will learn."""
SAMPLE_CHARS = 600


SAFE_LABEL = re.compile(r"(#+ |diff --git |[Ff]ile:? )?[\w./ -]{1,100}")
"""A first line that names the example (a heading, a path, a diff's header) and can hold no
secret value: no quotes, no `=`, no `:` after the start."""


DIFF_HEADER = re.compile(r"^\+\+\+ (?:b/)?([\w./-]{1,200})$", re.M)
"""A diff's new-file line (`+++ app/main.py`): the file a commit's example changes."""


def _label(builder: str, example: dict[str, Any]) -> str:
    """What the card calls a dropped example: its builder, and its first line where that line
    only names it (else its place in the build), never any text that could be the secret."""
    texts = _texts(example)
    changed = [m.group(1) for t in texts for m in DIFF_HEADER.finditer(t)]
    if changed:  # a commit's example: the files its diff changes
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"{builder}: the change to {', '.join(dict.fromkeys(changed[:3]))}{more}"
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
    1024 estimated tokens, for a dataset built with no model in mind).
    """
    fit = fit or Fit(load_counter(None), 1024)
    repo = open_repo(repo_path)
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
            made, dropped = doc_examples(selection.files, repo_path.name, fit)
        elif name == "jsonl":
            made, dropped = jsonl_examples(selection.files, fit)
        elif name == "commits":
            rev = f"{since}..{head}" if since else head
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

    found = Counter(selection.secrets)
    dropped_for_secrets = 0
    dropped_examples: list[dict[str, Any]] = []
    kept: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for builder, clean in examples:
        if kinds := _secret_kinds(builder, clean):
            found.update(kinds)
            dropped_for_secrets += 1
            dropped_examples.append(
                {"example": _label(builder, clean), "why": f"holds {', '.join(sorted(kinds))}"}
            )
            skipped["holds a secret"] += 1
            continue
        key = near_duplicate_key(clean)
        if key in seen:
            skipped["near-duplicate"] += 1
            continue
        seen.add(key)
        # One file per format: the jsonl builder passes through whatever formats it found.
        name = builder if builder != "jsonl" else f"jsonl-{detect_format(clean)}"
        kept.setdefault(name, []).append(clean)
    every = [e for made in kept.values() for e in made]

    source_dir = out_root / source_name
    source_dir.mkdir(parents=True, exist_ok=True)
    versions = [int(p.name[1:]) for p in source_dir.glob("v[0-9]*") if p.name[1:].isdigit()]
    version = max(versions, default=0) + 1
    final = source_dir / f"v{version}"
    partial = source_dir / f"v{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # torn by a build killed mid-write
    partial.mkdir()
    for builder, made in kept.items():
        with (partial / f"{builder}.jsonl").open("w", encoding="utf-8") as fh:
            for example in made:
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
        "per_builder": per_builder,
        "replayed_files": replayed,
        "kept_per_builder": {name: len(made) for name, made in kept.items()},
        "skipped": dict(skipped),
        "samples": {name: [_sample(e) for e in made[:SAMPLES]] for name, made in kept.items()},
        "secrets": {
            "files_skipped": skipped.get("credential file", 0)
            + skipped.get("diff of a credential file left out", 0)
            + skipped.get("file holds a secret", 0),
            "examples_dropped": dropped_for_secrets,
            "found": dict(found),
            "left_out": selection.left_out,
            "dropped": dropped_examples,
        },
    }
    (partial / "card.json").write_text(json.dumps(card, indent=2))
    os.replace(partial, final)
    return Built(final, card)
