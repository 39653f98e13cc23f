"""Git repositories built in a test, and the real ones in `tests/data` (see its README)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

Test = TypeVar("Test", bound=Callable[..., object])

CORPORA = Path(__file__).resolve().parents[1] / "data"
"""Real repositories as git bundles, in the repository itself so that the tests on real
material run from any clone (they skip, saying why, where a copy was made without them)."""
MARKUPSAFE = CORPORA / "markupsafe.bundle"


def needs_markupsafe(test: Test) -> Test:
    """A test on markupsafe's real history: in the `real` tier, and skipped, saying why, where
    its bundle is absent."""
    skip = pytest.mark.skipif(
        not MARKUPSAFE.exists(),
        reason=f"{MARKUPSAFE} is absent (a copy of the project without tests/data)",
    )
    marked: Test = pytest.mark.real(skip(test))
    return marked


def clone_markupsafe(into: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(MARKUPSAFE), str(into)], check=True)
    return into


def git(repo: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="T",
        GIT_AUTHOR_EMAIL="t@example.invalid",
        GIT_COMMITTER_NAME="T",
        GIT_COMMITTER_EMAIL="t@example.invalid",
    )
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


def commit(repo: Path, files: dict[str, str | bytes], message: str) -> str:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")
