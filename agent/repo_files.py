"""Which tracked files of a repository are training material, and why the others are not.

Read from the commit (not the working tree), so a dataset is exactly what is committed.
Skipped: credential files (by name, or by a secret in their content that redacting its value
does not remove), symlinks (a link out of the repository is never followed), binaries, vendored,
generated and boilerplate files (CI, editor and git settings, licences), and oversized ones. A
file whose secrets are redacted is kept, redacted.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from agent.redaction import Redactor
from agent.secrets import secret_file_reason

VENDORED = [
    "vendor/*",
    "*/vendor/*",
    "node_modules/*",
    "*/node_modules/*",
    "third_party/*",
    "*/third_party/*",
    "*.min.js",
    "*.min.css",
    "dist/*",
    "build/*",
]
GENERATED = [
    "*.lock",
    "package-lock.json",
    "pnpm-lock.yaml",
    "poetry.lock",
    "Cargo.lock",
    "go.sum",
    "*_pb2.py",
    "*_pb2_grpc.py",
    "*.pb.go",
    "*.generated.*",
    "*.svg",
    "*.map",
]
BOILERPLATE_NAMES = [
    ".editorconfig",
    ".gitignore",
    ".gitattributes",
    ".gitmodules",
    ".mailmap",
    ".dockerignore",
    ".npmignore",
    ".prettierignore",
    ".eslintignore",
    ".gitlab-ci.yml",
    ".travis.yml",
    "appveyor.yml",
    ".appveyor.yml",
    "azure-pipelines.yml",
    ".azure-pipelines.yml",
    ".pre-commit-config.yaml",
    ".readthedocs.yaml",
    ".readthedocs.yml",
    "codecov.yml",
    ".codecov.yml",
    ".coveragerc",
    "renovate.json",
    "CODEOWNERS",
    "LICENSE",
    "LICENSE.*",
    "LICENCE",
    "LICENCE.*",
    "COPYING",
    "COPYING.*",
    "NOTICE",
    "CODE_OF_CONDUCT.*",
    "MANIFEST.in",
    "make.bat",
]
"""Files every repository has and none is about (editor and git settings, CI, licences, Sphinx's
Windows script), matched by name anywhere: what a model should learn is the repository's own
source, tests and docs, not `.editorconfig` (once two code samples of a card of eight)."""
BOILERPLATE_FOLDERS = (".github/", ".gitlab/", ".circleci/", ".devcontainer/", ".vscode/", ".idea/")
"""Folders of CI workflows, issue templates and editor settings, at the top of the repository."""


def boilerplate(path: str) -> bool:
    name = PurePosixPath(path).name
    return path.startswith(BOILERPLATE_FOLDERS) or any(
        fnmatch.fnmatch(name, p) for p in BOILERPLATE_NAMES
    )


# Files that pin dependencies: a commit that changes only these teaches nothing about the code.
DEPENDENCY_FILES = [
    *(p for p in GENERATED if "lock" in p or p == "go.sum"),
    "*-lock.json",
    "*-lock.yaml",
    "requirements*.txt",
    "requirements/*",
    "*/requirements/*",
    "constraints*.txt",
]
MAX_BYTES = 256 * 1024
SYMLINK_MODE = 0o120000
"""Git's file mode for a symbolic link: its blob holds the target's path, not its text."""


@dataclass
class FileText:
    path: str
    text: str


@dataclass
class Selection:
    files: list[FileText] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    secrets: Counter[str] = field(default_factory=Counter)
    """Kinds of secret found in the files left out for holding one."""
    left_out: list[dict[str, Any]] = field(default_factory=list)
    """Each file left out for a secret, and why: what the card names."""
    redacted: list[dict[str, Any]] = field(default_factory=list)
    """Each file kept with secrets redacted in it, and what they were."""


def tracked_blobs(tree: Any) -> Iterator[Any]:
    """Every file (blob) of a GitPython tree, at any depth."""
    for item in tree.traverse():
        if getattr(item, "type", None) == "blob":
            yield item


def path_matches(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) for p in patterns)


def select_files(
    repo: Any,
    commit: str = "HEAD",
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    only: set[str] | None = None,
    max_bytes: int = MAX_BYTES,
    redactor: Redactor | None = None,
) -> Selection:
    """Text of every tracked file worth learning from at `commit` (GitPython `repo`), each
    secret in it redacted by `redactor` (which knows what a first pass found)."""
    sel = Selection()
    redactor = redactor or Redactor()
    tree = repo.commit(commit).tree
    for blob in tracked_blobs(tree):
        path = blob.path
        if only is not None and path not in only:
            continue
        if include and not path_matches(path, include):
            continue
        if blob.mode == SYMLINK_MODE:
            sel.skipped["symlink"] += 1
            continue
        if exclude and path_matches(path, exclude):
            sel.skipped["excluded by the source's globs"] += 1
            continue
        if why := secret_file_reason(path):
            sel.skipped["credential file"] += 1
            sel.left_out.append({"file": path, "why": why})
            continue
        if path_matches(path, VENDORED):
            sel.skipped["vendored"] += 1
            continue
        if path_matches(path, GENERATED):
            sel.skipped["generated"] += 1
            continue
        if boilerplate(path):
            sel.skipped["boilerplate (CI, editor and git settings, licence)"] += 1
            continue
        if blob.size > max_bytes:
            sel.skipped["oversized"] += 1
            continue
        data = blob.data_stream.read()
        if b"\0" in data[:8192]:
            sel.skipped["binary"] += 1
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            sel.skipped["not UTF-8"] += 1
            continue
        cleaned = redactor.clean(text, path)  # the whole file, before it is cut up
        sel.secrets.update(cleaned.found)
        if cleaned.text is None:
            sel.skipped["file holds a secret"] += 1
            sel.left_out.append({"file": path, "why": f"holds {', '.join(sorted(cleaned.left))}"})
            continue
        if cleaned.redacted:
            kinds = ", ".join(sorted(cleaned.found))
            sel.redacted.append({"file": path, "why": f"{cleaned.redacted} redacted: {kinds}"})
        if cleaned.text.strip():
            sel.files.append(FileText(path, cleaned.text))
    return sel
