"""A watched repository is untrusted input: nothing its git configuration names may run.

Every key through which a repository's own `.git/config` makes git start a program points at a
script that leaves a marker, the repository's attributes send every file through those drivers,
and a hooks folder holds every hook. The daemon adds it, builds a mission's dataset (commit
diffs included) and scans new commits: no marker, ever. The same repository under plain git
leaves markers, so the traps are live. A repository owned by another user is refused with git's
reason and what to do, not scanned as `0 new commits`.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from forge_client.client import RemoteError
from tests.support.daemon_harness import DaemonFactory
from tests.support.missions import agent_config, make_repo, next_proposal
from tests.support.repos import git

PROGRAM_KEYS = [
    "core.fsmonitor",
    "core.sshCommand",
    "core.pager",
    "core.askPass",
    "core.editor",
    "core.alternateRefsCommand",
    "sequence.editor",
    "diff.external",
    "diff.evil.command",
    "diff.evil.textconv",
    "merge.evil.driver",
    "filter.evil.clean",
    "filter.evil.smudge",
    "filter.evil.process",
    "gpg.program",
]
HOOKS = [
    "pre-commit",
    "post-commit",
    "post-checkout",
    "post-merge",
    "pre-auto-gc",
    "post-rewrite",
    "reference-transaction",
    "post-index-change",
]


def trap(folder: Path, name: str, markers: Path) -> Path:
    """A script that records that it ran, under `name`; a clean or smudge filter then passes
    its input on, as a real one would."""
    script = folder / name.replace(".", "_")
    then = "exec cat" if name.endswith((".clean", ".smudge")) else "exit 0"
    script.write_text(f"#!/bin/sh\ntouch '{markers / name}'\n{then}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def disarmed_commit(repo: Path, files: dict[str, str], message: str) -> None:
    """The test's own commits, with the traps pinned off (as the daemon pins them) so that
    every marker left is the daemon's doing."""
    pins = {k: "cat" if k.endswith((".clean", ".smudge")) else "false" for k in PROGRAM_KEYS}
    pins |= {
        "filter.evil.process": "",
        "core.pager": "cat",
        "core.hooksPath": "/dev/null",
        "filter.evil.required": "false",
    }
    flags = [arg for key, value in pins.items() for arg in ("-c", f"{key}={value}")]
    for name, text in files.items():
        (repo / name).write_text(text)
        git(repo, *flags, "add", name)
    git(repo, *flags, "commit", "-q", "-m", message)


def arm(repo: Path, traps: Path, markers: Path) -> None:
    traps.mkdir()
    markers.mkdir()
    for key in PROGRAM_KEYS:
        git(repo, "config", key, str(trap(traps, key, markers)))
    hooks = traps / "hooks"
    hooks.mkdir()
    for hook in HOOKS:
        trap(hooks, hook, markers).rename(hooks / hook)
    git(repo, "config", "core.hooksPath", str(hooks))
    git(repo, "config", "filter.evil.required", "true")
    attributes = "* filter=evil diff=evil merge=evil\n"
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text(attributes)
    disarmed_commit(repo, {".gitattributes": attributes}, "Route every file through evil drivers")


def test_nothing_a_repositorys_config_names_ever_runs(
    make_daemon: DaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    markers = tmp_path / "markers"
    arm(repo, tmp_path / "traps", markers)
    assert list(markers.iterdir()) == []
    for n in range(3):
        disarmed_commit(
            repo, {f"mod_{n}.py": f"def f{n}(x: int) -> int:\n    return x * {n}\n"}, f"Add f{n}"
        )

    config = agent_config(tiny_model)
    daemon = make_daemon(config=config).start()
    start = daemon.call("system.status")["last_seq"]
    source = daemon.call("sources.add", path=str(repo))
    mission = next_proposal(daemon, start)
    assert mission["data"]["card"]["per_builder"]["commits"] >= 3  # commit diffs were read
    disarmed_commit(repo, {"later.py": "def later() -> None:\n    pass\n"}, "Add a later function")
    disarmed_commit(repo, {"docs.md": "# Later\n\nCall `later()` when done.\n"}, "Document later")
    again = daemon.call("sources.scan", id=source["id"])["mission"]
    assert again is not None  # the incremental path (changed files between commits) ran too
    assert sorted(p.name for p in markers.iterdir()) == []

    # The traps are live: plain git on the same repository runs them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    subprocess.run(["git", "status"], cwd=repo, env=env, capture_output=True, check=False)
    subprocess.run(["git", "diff", "HEAD~1"], cwd=repo, env=env, capture_output=True, check=False)
    ran = {p.name for p in markers.iterdir()}
    assert {"core.fsmonitor", "filter.evil.process"} <= ran, ran


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a repository to another user needs root")
def test_a_repository_of_another_user_is_refused_with_gits_reason(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path)
    subprocess.run(["chown", "-R", "65534:65534", str(repo)], check=True)
    daemon = make_daemon(config=agent_config(Path("tiny-llama"))).start()
    with pytest.raises(RemoteError) as refused:
        daemon.call("sources.add", path=str(repo))
    assert refused.value.data["param"] == "path"
    assert "belongs to another user (uid 65534)" in refused.value.message
    assert f"git config --global --add safe.directory {repo}" in refused.value.message
