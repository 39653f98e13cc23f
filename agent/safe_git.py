"""Git on a repository we do not trust: nothing its configuration names may run.

A watched repository's own `.git/config` (and what it includes) can name programs git starts:
`core.fsmonitor`, hooks, external diff and merge drivers, textconv, clean/smudge filters, the
ssh command, pager, askpass and editor. Every git command the agent runs on a source goes
through `open_repo`, whose environment pins each of them at the command-line scope
(`GIT_CONFIG_COUNT`, git ≥ 2.31), which wins over every config file, and sets the environment
variables that would name programs too. Drivers have free names (`filter.<name>.clean`), so the
repository's own driver keys are listed first (reading config runs nothing) and each is pinned
to a program that does nothing. The commands themselves read commits, never the work tree, and
diff with `--no-ext-diff --no-textconv`.

A repository owned by another user is refused by git itself (`safe.directory`); `open_repo`
says so in one line with what to do, instead of the scan finding nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

PINNED: dict[str, str] = {
    "core.fsmonitor": "false",
    "core.hooksPath": "/dev/null",
    "core.sshCommand": "false",
    "core.pager": "cat",
    "core.askPass": "false",
    "core.editor": "false",
    "core.attributesFile": "/dev/null",
    "core.alternateRefsCommand": "false",
    "sequence.editor": "false",
    "diff.external": "false",
    "credential.helper": "",
    "gpg.program": "false",
    "gpg.ssh.program": "false",
    "gpg.x509.program": "false",
    "protocol.allow": "never",
}
"""Keys whose value git runs as a program (or that allow a transport), and the harmless value
each is pinned to; `false` exits at once where git insists on running something."""

DRIVER_KEY = re.compile(
    r"^(?:(?:diff|merge|filter)\..+\.(?P<what>command|textconv|driver|clean|smudge|process)"
    r"|protocol\.(?P<proto>.+)\.allow)$",
    re.IGNORECASE,
)

SAFE_ENV: dict[str, str] = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "false",
    "SSH_ASKPASS": "false",
    "GIT_SSH": "false",
    "GIT_SSH_COMMAND": "false",
    "GIT_PAGER": "cat",
    "GIT_EDITOR": "false",
    "GIT_EXTERNAL_DIFF": "false",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_CONFIG_PARAMETERS": "",
}
"""Environment variables that name programs or change what git reads, and their safe values."""


class UnsafeRepository(Exception):
    """Git will not read this repository as it stands; the message says why and what to do."""


def _git(path: Path, overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=path,
        env=os.environ | overrides,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _pins(keys: dict[str, str]) -> dict[str, str]:
    env = dict(SAFE_ENV)
    env["GIT_CONFIG_COUNT"] = str(len(keys))
    for i, (key, value) in enumerate(keys.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def _driver_pins(path: Path) -> dict[str, str]:
    """Pins for the program keys the repository's config defines under names of its own."""
    pins: dict[str, str] = {}
    for key in _git(path, _pins(PINNED), "config", "--list", "--name-only").stdout.splitlines():
        found = DRIVER_KEY.match(key.strip())
        if not found:
            continue
        if found["proto"] is not None:
            pins[key] = "never"
        elif found["what"].lower() in ("clean", "smudge"):
            pins[key] = "cat"  # the content passes unchanged
        elif found["what"].lower() == "process":
            pins[key] = ""  # empty: no long-running filter (a failing one is fatal to git)
        else:
            pins[key] = "false"
    return pins


def git_environment(path: Path) -> dict[str, str]:
    """What every git command on the repository at `path` runs with, over the daemon's own
    environment."""
    return _pins(PINNED | _driver_pins(path))


def check_owner(path: Path) -> None:
    """Raise UnsafeRepository where git refuses the repository for its owner."""
    out = _git(path, _pins(PINNED), "rev-parse", "--git-dir")
    if "dubious ownership" in out.stderr:
        raise UnsafeRepository(
            f"git refuses {path}: it belongs to another user (uid {path.stat().st_uid}), and git"
            " reads a repository only for its owner unless told to trust it; if you do, run "
            f"`git config --global --add safe.directory {path}`"
        )


def open_repo(path: Path) -> Any:
    """A GitPython `Repo` whose every command runs with the repository's programs pinned."""
    from git import Repo

    check_owner(path)
    # The path as it is: GitPython would expand `$NAME` in it, so a folder named `$HOME` would
    # open another repository.
    repo = Repo(path, expand_vars=False)
    repo.git.update_environment(**git_environment(path))
    return repo


def changed_paths(repo: Any, since: str, head: str) -> set[str]:
    """The paths that differ between two commits (no driver of the repository's runs)."""
    out = repo.git.diff("--no-ext-diff", "--no-textconv", "--name-only", f"{since}..{head}")
    return set(out.splitlines())


def has_commit(repo: Any, rev: str) -> bool:
    """Whether the repository still holds this commit (a force-push and a gc remove one)."""
    try:
        repo.git.cat_file("-e", f"{rev}^{{commit}}")
    except Exception:  # GitCommandError: not there, or not a commit
        return False
    return True
