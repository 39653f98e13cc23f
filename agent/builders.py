"""The dataset builders: turn a repository's material into training examples.

* `code`: tracked text files as raw text, in chunks of whole lines, each headed by its path.
* `docs`: Markdown and reStructuredText split by heading into question/answer chat pairs.
* `commits`: each commit's diff → its message, as chat pairs; merges, trivial messages, bots'
  commits, version bumps and dependency-lock updates are left out (and counted).
* `jsonl`: datasets kept in the repository, line by line through the engine's format checks.

Every builder sizes what it emits with `Fit`, in the base model's own tokens, so no example can
fail a job for its length. Each returns examples in the engine's formats and a count of what it
dropped and why; the secret gate and de-duplication happen after, once for all builders.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from contextlib import closing
from typing import Any

from agent.commit_stream import FileDiff, commit_patches
from agent.repo_files import DEPENDENCY_FILES, FileText, path_matches
from agent.secrets import secret_file_reason
from agent.token_fit import CHAT_MARGIN, TEXT_MARGIN, Fit, chunk_lines, cut_to_fit
from forge_api.examples import detect_format, record_problem

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
MARKDOWN = (".md", ".markdown")
RESTRUCTURED = (".rst",)
ATX_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s{0,3}(```|~~~)")
RST_UNDERLINE = re.compile(r"^([=\-~^\"'`*+#:.])\1{2,}\s*$")
# A commit that only moves a version: "release version 3.0.2", "Bump the github-actions group
# with 5 updates", "v1.2.3", "[pre-commit.ci] pre-commit autoupdate".
VERSION_BUMP = re.compile(
    r"(?ix)^(\[pre-commit\.ci\]|bump\b|v?\d+(\.\d+)+\b"
    r"|(release|releasing|start|prepare|set|new)\s+(version\s+)?v?\d+(\.\d+)+)"
)
PROMPT = "Write the commit message for this change:\n\n"

Example = dict[str, Any]


def code_examples(files: list[FileText], fit: Fit) -> tuple[list[Example], Counter[str]]:
    out: list[Example] = []
    dropped: Counter[str] = Counter()
    for f in files:
        if f.path.lower().endswith((*MARKDOWN, *RESTRUCTURED, ".jsonl")):
            continue  # the docs and jsonl builders own these
        chunks = chunk_lines(f.text, f"# {f.path}\n", fit.text_budget, fit.counter)
        out += [{"text": chunk} for chunk in chunks]
    return out, dropped


def _markdown_headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first line, first body line, title) of each ATX heading outside code fences."""
    found = []
    fence: str | None = None
    for i, line in enumerate(lines):
        if m := FENCE.match(line):
            fence = None if fence == m.group(1) else (fence or m.group(1))
            continue
        if fence is None and (h := ATX_HEADING.match(line)):
            found.append((i, i + 1, h.group(2)))
    return found


def _rst_headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(first line, first body line, title) of each reStructuredText section title: a line
    underlined (and perhaps overlined) by one repeated punctuation character. docutils only
    warns when the underline is shorter than the title, so such a title counts too."""
    found = []
    for i in range(len(lines) - 1):
        title = lines[i].rstrip()
        under = RST_UNDERLINE.match(lines[i + 1])
        if not under or not title or title[0].isspace() or not re.search(r"\w", title):
            continue
        over = i > 0 and lines[i - 1].rstrip() == lines[i + 1].rstrip()
        found.append((i - 1 if over else i, i + 2, title.strip()))
    return found


def doc_sections(files: list[FileText]) -> tuple[list[tuple[str, str, str]], Counter[str]]:
    """(path, heading, body) of every Markdown or reStructuredText section with text in it."""
    sections: list[tuple[str, str, str]] = []
    dropped: Counter[str] = Counter()
    for f in files:
        name = f.path.lower()
        if not name.endswith((*MARKDOWN, *RESTRUCTURED)):
            continue
        lines = f.text.splitlines()
        marks = _markdown_headings(lines) if name.endswith(MARKDOWN) else _rst_headings(lines)
        for n, (_start, body_from, title) in enumerate(marks):
            body_to = marks[n + 1][0] if n + 1 < len(marks) else len(lines)
            body = "\n".join(lines[body_from:body_to]).strip()
            if len(body) < 20:
                dropped["doc section too short"] += 1
                continue
            sections.append((f.path, title, body))
    return sections, dropped


def chat(question: str, answer: str) -> Example:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def doc_examples(
    files: list[FileText], repo_name: str, fit: Fit
) -> tuple[list[Example], Counter[str]]:
    """A question per section; a section too long for one example is answered in parts."""
    sections, dropped = doc_sections(files)
    out = []
    for path, heading, body in sections:
        question = f'In {repo_name}, what does {path} say about "{heading}"?'
        room = fit.chat_budget - fit.counter.count(question + " (part 99 of 99)")
        parts = chunk_lines(body, "", room, fit.counter)
        for n, part in enumerate(parts, start=1):
            asked = question if len(parts) == 1 else f"{question} (part {n} of {len(parts)})"
            out.append(chat(asked, part.strip()))
        if len(parts) > 1:
            dropped["doc section split into parts"] += len(parts) - 1
    return out, dropped


def example_tokens(example: Example, fit: Fit) -> int:
    """The tokens of an example's text, with the margin its format adds (template, end)."""
    if "messages" in example:
        texts = [str(m.get("content", "")) for m in example["messages"]]
    else:
        keys = ("text", "prompt", "completion", "instruction", "input", "output")
        texts = [example[k] for k in keys if isinstance(example.get(k), str)]
    # Chat and instruction examples go through the chat template; the others gain an EOS.
    templated = "messages" in example or "output" in example
    return sum(fit.counter.count_many(texts)) + (CHAT_MARGIN if templated else TEXT_MARGIN)


def jsonl_examples(files: list[FileText], fit: Fit) -> tuple[list[Example], Counter[str]]:
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
            if example_tokens(record, fit) > fit.max_seq_len:
                dropped["jsonl: longer than max_seq_len"] += 1
                continue
            out.append(record)
    return out, dropped


def trivial_message(message: str) -> bool:
    first = message.strip().splitlines()[0].strip().lower() if message.strip() else ""
    return len(first) < 8 or first.rstrip(".!") in TRIVIAL


def bot_author(commit: Any) -> bool:
    """Commits made by a bot account (dependabot[bot], pre-commit-ci[bot], renovate…)."""
    name = (commit.author.name or "").lower()
    email = (commit.author.email or "").lower()
    return name.endswith("[bot]") or "[bot]@" in email or name in {"renovate", "dependabot"}


def why_left_out(commit: Any, message: str) -> str | None:
    """Why a commit teaches nothing about the code, by its metadata alone (a count on the
    card), or None; asked before its diff is computed."""
    if len(commit.parents) > 1:
        return "merge commit"
    if bot_author(commit):
        return "commit by a bot"
    if trivial_message(message):
        return "trivial commit message"
    if VERSION_BUMP.match(message):
        return "version bump"
    return None


def fit_diff(parts: list[tuple[str, str]], budget: int, fit: Fit) -> str:
    """File diffs within `budget` tokens: whole files while they fit, one long file's diff cut
    at a line with a marker, and the names of the files that did not fit at the end."""
    counter = fit.counter
    tail_room = 48  # for the closing list of files left out
    kept: list[str] = []
    left: list[str] = []
    used = 0
    for path, text in parts:
        n = counter.count(text)
        room = budget - tail_room - used
        if n <= room:
            kept.append(text)
            used += n
        elif room > budget // 4:
            cut = cut_to_fit(text, room, counter, "[… {lines} more lines of this diff cut]\n")
            kept.append(cut)
            used += counter.count(cut)
        else:
            left.append(path)
    if left:
        names = ", ".join(left[:4]) + (f" and {len(left) - 4} more" if len(left) > 4 else "")
        note = f"[… {len(left)} more files changed: {names}]"
        kept.append(note if counter.count(note) <= tail_room else f"[… {len(left)} more files]")
    return "\n".join(kept)


def commit_examples(
    repo: Any,
    rev_range: str,
    fit: Fit,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
) -> tuple[list[Example], Counter[str]]:
    """(diff → message) pairs; a file the source's globs leave out is left out of its diff."""
    out: list[Example] = []
    dropped: Counter[str] = Counter()
    with closing(commit_patches(repo, rev_range)) as patches:  # the same walk and order
        for commit in repo.iter_commits(rev_range):
            sha, diffs = next(patches)
            if sha != commit.hexsha:
                raise RuntimeError(f"git log and rev-list disagree at {commit.hexsha} ({sha})")
            if example := commit_example(commit, diffs, fit, dropped, include, exclude):
                out.append(example)
    return out, dropped


def commit_example(
    commit: Any,
    diffs: list[FileDiff],
    fit: Fit,
    dropped: Counter[str],
    include: list[str] | None,
    exclude: list[str] | None,
) -> Example | None:
    """One commit's (diff → message) pair, or None with the reason counted in `dropped`."""
    message = commit.message.strip()
    if reason := why_left_out(commit, message):
        dropped[reason] += 1
        return None
    paths = [d.path for d in diffs]
    if paths and all(path_matches(p, DEPENDENCY_FILES) for p in paths):
        dropped["dependency or lock files only"] += 1
        return None
    parts = []
    for d, path in zip(diffs, paths, strict=True):
        if secret_file_reason(path):
            dropped["diff of a credential file left out"] += 1
            continue
        if (include and not path_matches(path, include)) or (
            exclude and path_matches(path, exclude)
        ):
            dropped["diff of a file excluded by the source's globs"] += 1
            continue
        patch = d.patch.decode("utf-8", errors="replace")
        parts.append((path, f"--- {d.old}\n+++ {d.new}\n{patch}"))
    if not any(text.strip() for _, text in parts):
        dropped["empty diff"] += 1
        return None
    answer = cut_to_fit(message, fit.chat_budget // 4, fit.counter, "\n[…]")
    budget = fit.chat_budget - fit.counter.count(PROMPT) - fit.counter.count(answer)
    diff = fit_diff(parts, budget, fit)
    if diff != "\n".join(text for _, text in parts):
        dropped["commit diff cut to fit max_seq_len"] += 1
    return chat(PROMPT + diff, answer)
