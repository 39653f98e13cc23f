"""Every commit's file diffs from one `git log --patch` stream.

Asking GitPython for each commit's diff starts a `git diff-tree` per commit and, per file, reads
the repository's submodules again: on a history of hundreds of commits that was a quarter of a
dataset build. One `git log` walks the same commits in the same order and prints every patch as
it goes; this module cuts its output into commits and files.

The repository is untrusted, and `git log` is porcelain: its config could change prefixes,
colour, rename detection, the root commit's patch, signatures and merge diffs. Each of those is
set on the command line, which wins over any config file, and the command runs in the
environment `agent.safe_git.open_repo` gave the repository (no driver of its own runs).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

NO_FILE = "/dev/null"
HEADER_LINES = (
    b"old mode ",
    b"new mode ",
    b"deleted file mode ",
    b"new file mode ",
    b"similarity index ",
    b"dissimilarity index ",
    b"index ",
    b"copy from ",
    b"copy to ",
    b"rename from ",
    b"rename to ",
    b"--- ",
    b"+++ ",
)
"""Lines of a file's header, before its hunks: skipped (the names are read from them)."""
ESCAPES = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13, b'"': 34, b"\\": 92}


@dataclass
class FileDiff:
    """One file's change: its old and new names (`/dev/null` where it was added or deleted)
    and the patch after its header (hunks, or git's line saying a binary file differs)."""

    old: str
    new: str
    patch: bytes = b""

    @property
    def path(self) -> str:
        return self.new if self.new != NO_FILE else self.old


@dataclass
class _Names:
    """What a file's header says about its names."""

    a: bytes = b""
    b: bytes = b""
    added: bool = False
    deleted: bool = False
    renamed: list[bytes] = field(default_factory=list)


def unquote(name: bytes) -> bytes:
    """A name as git prints it: C-quoted (`"a/t\\303\\244st"`) where it holds odd bytes."""
    if not (name.startswith(b'"') and name.endswith(b'"') and len(name) >= 2):
        return name
    out = bytearray()
    body, i = name[1:-1], 0
    while i < len(body):
        if body[i : i + 1] == b"\\" and i + 1 < len(body):
            nxt = body[i + 1 : i + 2]
            if nxt.isdigit():
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out.append(ESCAPES.get(nxt, nxt[0]))
            i += 2
            continue
        out.append(body[i])
        i += 1
    return bytes(out)


def _split_header(rest: bytes) -> tuple[bytes, bytes]:
    """`a/X b/Y` of a `diff --git` line. Unquoted names with spaces are ambiguous there; they
    are equal unless the file was renamed, and a rename's names come from its own lines."""
    if rest.startswith(b'"'):
        end = 1
        while end < len(rest) and (rest[end : end + 1] != b'"' or rest[end - 1 : end] == b"\\"):
            end += 1
        return unquote(rest[: end + 1]), unquote(rest[end + 2 :])
    if rest.endswith(b'"'):
        start = rest.rindex(b' "')
        return rest[:start], unquote(rest[start + 1 :])
    half = (len(rest) - 1) // 2
    return rest[:half], rest[half + 1 :]


def _file(names: _Names, patch: bytes) -> FileDiff:
    a = names.renamed[0] if len(names.renamed) == 2 else names.a.removeprefix(b"a/")
    b = names.renamed[1] if len(names.renamed) == 2 else names.b.removeprefix(b"b/")
    old = NO_FILE if names.added else a.decode("utf-8", "replace")
    new = NO_FILE if names.deleted else b.decode("utf-8", "replace")
    return FileDiff(old, new, patch)


def _files(lines: list[bytes]) -> list[FileDiff]:
    """A commit's output lines (after its header) cut into files."""
    out: list[FileDiff] = []
    names: _Names | None = None
    body: list[bytes] = []
    in_header = False
    for line in lines:
        if line.startswith(b"diff --git "):
            if names is not None:
                out.append(_file(names, b"".join(body)))
            a, b = _split_header(line[len(b"diff --git ") :].rstrip(b"\n"))
            names, body, in_header = _Names(a, b), [], True
            continue
        if names is None:
            continue
        if in_header:
            if line.startswith(b"new file mode "):
                names.added = True
            elif line.startswith(b"deleted file mode "):
                names.deleted = True
            elif line.startswith((b"rename from ", b"rename to ")):
                names.renamed.append(unquote(line.split(b" ", 2)[2].rstrip(b"\n")))
            if line.startswith(HEADER_LINES):
                continue
            in_header = False
        body.append(line)
    if names is not None:
        out.append(_file(names, b"".join(body)))
    return out


def commit_patches(repo: Any, rev_range: str) -> Generator[tuple[str, list[FileDiff]], None, None]:
    """(commit id, its file diffs against its first parent, or all it adds for a root commit)
    for each commit of `rev_range`, in `repo.iter_commits(rev_range)`'s order; merges have
    none. `repo` is a GitPython Repo from `open_repo`."""
    command = [
        "git",
        "-c",
        "core.quotePath=true",
        "log",
        "--format=%x00%H",
        "--patch",
        "-M",
        "--root",
        "--diff-merges=off",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--no-show-signature",
        "--no-notes",
        "--submodule=short",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        rev_range,
        "--",
    ]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            command,
            cwd=repo.working_dir,
            env=os.environ | repo.git.environment(),
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert proc.stdout is not None
        try:
            sha: str | None = None
            lines: list[bytes] = []
            for line in proc.stdout:
                if line.startswith(b"\0"):
                    if sha is not None:
                        yield sha, _files(lines)
                    sha, lines = line[1:].strip().decode(), []
                else:
                    lines.append(line)
            if sha is not None:
                yield sha, _files(lines)
            if proc.wait() != 0:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip()
                raise RuntimeError(f"git log {rev_range} failed in {repo.working_dir}: {said}")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
