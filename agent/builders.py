"""The dataset builders: turn a repository's material into training examples.

* `code`: tracked text files as raw text, in chunks of whole lines, each headed by its path.
* `docs`: Markdown split by heading into question/answer chat pairs.
* `commits`: each commit's diff → its message, as chat pairs; merges and trivial messages dropped.
* `jsonl`: datasets kept in the repository, line by line through the engine's format checks.

Each returns examples in the engine's formats and a count of what it dropped and why; redaction
and de-duplication happen after, once for all builders.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from agent.repo_files import FileText
from agent.secrets import secret_file_reason
from forged.schema import detect_format, record_problem

# About 300 tokens of code with a usual tokenizer: a chunk fits a 512-token row with room.
CHUNK_CHARS = 1200
MAX_DIFF_CHARS = 6000
TRIVIAL = {
    "wip",
    "fix",
    "fixes",
    "typo",
    "update",
    "updates",
    "changes",
    "misc",
    "tmp",
    "test",
    "cleanup",
    "minor",
    "stuff",
    ".",
}
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)

Example = dict[str, Any]


def code_examples(files: list[FileText]) -> tuple[list[Example], Counter[str]]:
    out: list[Example] = []
    dropped: Counter[str] = Counter()
    for f in files:
        if f.path.lower().endswith((".md", ".markdown", ".jsonl")):
            continue  # the docs and jsonl builders own these
        chunk: list[str] = []
        size = 0
        for line in f.text.splitlines(keepends=True):
            if size + len(line) > CHUNK_CHARS and chunk:
                out.append({"text": f"# {f.path}\n{''.join(chunk)}"})
                chunk, size = [], 0
            chunk.append(line[:CHUNK_CHARS])
            size += len(chunk[-1])
        if chunk and "".join(chunk).strip():
            out.append({"text": f"# {f.path}\n{''.join(chunk)}"})
    return out, dropped


def doc_sections(files: list[FileText]) -> tuple[list[tuple[str, str, str]], Counter[str]]:
    """(path, heading, body) of every Markdown section with something in it."""
    sections: list[tuple[str, str, str]] = []
    dropped: Counter[str] = Counter()
    for f in files:
        if not f.path.lower().endswith((".md", ".markdown")):
            continue
        marks = list(HEADING.finditer(f.text))
        for i, m in enumerate(marks):
            end = marks[i + 1].start() if i + 1 < len(marks) else len(f.text)
            body = f.text[m.end() : end].strip()
            if len(body) < 20:
                dropped["doc section too short"] += 1
                continue
            sections.append((f.path, m.group(2), body))
    return sections, dropped


def chat(question: str, answer: str) -> Example:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer[:CHUNK_CHARS]},
        ]
    }


def doc_examples(files: list[FileText], repo_name: str) -> tuple[list[Example], Counter[str]]:
    sections, dropped = doc_sections(files)
    out = [
        chat(f'In {repo_name}, what does {path} say about "{heading}"?', body)
        for path, heading, body in sections
    ]
    return out, dropped


def jsonl_examples(files: list[FileText]) -> tuple[list[Example], Counter[str]]:
    out: list[Example] = []
    dropped: Counter[str] = Counter()
    for f in files:
        if not f.path.lower().endswith(".jsonl"):
            continue
        fmt = None
        for line in f.text.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                dropped["jsonl: not valid JSON"] += 1
                continue
            found = detect_format(record) if isinstance(record, dict) else None
            if found is None:
                dropped["jsonl: unknown format"] += 1
                continue
            fmt = fmt or found
            problem = (
                "a different format in the same file"
                if found != fmt
                else record_problem(found, record)
            )
            if problem:
                dropped[f"jsonl: {problem}"] += 1
                continue
            out.append(record)
    return out, dropped


def trivial_message(message: str) -> bool:
    first = message.strip().splitlines()[0].strip().lower() if message.strip() else ""
    return len(first) < 8 or first.rstrip(".!") in TRIVIAL


def commit_examples(repo: Any, rev_range: str) -> tuple[list[Example], Counter[str]]:
    out: list[Example] = []
    dropped: Counter[str] = Counter()
    for commit in repo.iter_commits(rev_range):
        if len(commit.parents) > 1:
            dropped["merge commit"] += 1
            continue
        message = commit.message.strip()
        if trivial_message(message):
            dropped["trivial commit message"] += 1
            continue
        parent = commit.parents[0] if commit.parents else None
        if parent is not None:
            diffs = parent.diff(commit, create_patch=True)
        else:  # the first commit: everything it adds, against the empty tree
            from git import NULL_TREE

            diffs = commit.diff(NULL_TREE, create_patch=True, R=True)
        parts = []
        for d in diffs:
            path = d.b_path or d.a_path or ""
            if secret_file_reason(path):
                dropped["diff of a credential file left out"] += 1
                continue
            patch = d.diff.decode("utf-8", errors="replace") if isinstance(d.diff, bytes) else ""
            parts.append(f"--- {d.a_path or '/dev/null'}\n+++ {d.b_path or '/dev/null'}\n{patch}")
        diff = "\n".join(parts)
        if not diff.strip():
            dropped["empty diff"] += 1
            continue
        if len(diff) > MAX_DIFF_CHARS:
            dropped["diff too large"] += 1
            continue
        out.append(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": f"Write the commit message for this change:\n\n{diff}",
                    },
                    {"role": "assistant", "content": message},
                ]
            }
        )
    return out, dropped
