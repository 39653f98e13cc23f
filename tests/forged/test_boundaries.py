"""What a request on the socket may make the daemon read: repositories under the allowed roots
only (after `..` and symlinks are resolved), never a file a committed symlink points at, and
datasets only from the data dir. Each refusal names the param and the fix, and changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.dataset_build import build_dataset
from engine.synthetic import write_dataset
from forge_client.client import RemoteError
from tests.support.daemon_harness import Daemon, DaemonFactory
from tests.support.repos import commit, git

INVALID_PARAMS = -32602


def refusal(daemon: Daemon, method: str, **params: object) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        daemon.call(method, **params)
    assert caught.value.code == INVALID_PARAMS, caught.value
    return caught.value


def small_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    commit(path, {"a.py": "def a() -> int:\n    return 1\n"}, "Add a")
    return path


def test_sources_are_resolved_before_the_allowed_roots_are_checked(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    daemon = make_daemon(config=f'[agent]\nallowed_roots = ["{allowed}"]\n').start()
    repo = small_repo(outside / "secret-repo")
    (allowed / "link").symlink_to(repo)
    for path in (
        str(repo),  # plainly outside
        str(allowed / ".." / "outside" / "secret-repo"),  # `..` climbs out
        str(allowed / "link"),  # a symlink inside that points out
    ):
        err = refusal(daemon, "sources.add", path=path)
        assert f"{repo} is outside the allowed roots ({allowed})" in str(err), err
        assert err.data == {"param": "path", "value": path}
    inside = small_repo(allowed / "mine")
    assert daemon.call("sources.add", path=str(allowed / "elsewhere" / ".." / "mine"))
    assert [s["path"] for s in daemon.call("sources.list")["sources"]] == [str(inside)]


def test_a_committed_symlink_is_never_followed_into_a_dataset(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "credentials.txt"
    secret.parent.mkdir()
    secret.write_text("the password is hunter2-outside-the-repo\n")
    repo = small_repo(tmp_path / "repo")
    (repo / "docs").mkdir()
    (repo / "docs" / "notes.md").symlink_to(secret)
    (repo / "escape.py").symlink_to("../outside/credentials.txt")
    git(repo, "add", "docs/notes.md", "escape.py")
    git(repo, "commit", "-q", "-m", "Link to a file outside the repository")

    built = build_dataset(repo, tmp_path / "datasets", "repo")
    text = "".join(p.read_text() for p in built.path.glob("*.jsonl"))
    assert "hunter2" not in text
    assert "def a()" in text  # the repository's own file is there
    assert built.card["skipped"]["symlink"] == 2, built.card["skipped"]


def test_jobs_read_datasets_only_from_the_data_dir(
    daemon: Daemon, tiny_model: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "mine.jsonl"
    outside.write_text('{"text": "hello"}\n')
    datasets_dir = daemon.paths.datasets_dir.resolve()
    (daemon.paths.datasets_dir / "sneaky.jsonl").symlink_to(outside)
    before = daemon.call("jobs.list")["total"]
    for kind in ("train", "eval"):
        for ref in (
            str(outside),
            str(daemon.paths.datasets_dir / os.path.relpath(outside, daemon.paths.datasets_dir)),
            str(daemon.paths.datasets_dir / "sneaky.jsonl"),
            "relative.jsonl",
        ):
            params = {"dataset": ref, "base_model": str(tiny_model)}
            err = refusal(daemon, "jobs.submit", kind=kind, params=params)
            assert f"outside the data dir ({datasets_dir})" in str(err), err
            assert f"forge datasets import {ref}" in str(err)
            assert err.data == {"param": "params.dataset", "value": ref}
        # A file that is not there is called missing, not sent to an import that would fail.
        missing = str(tmp_path / "nonexistent" / "x.jsonl")
        params = {"dataset": missing, "base_model": str(tiny_model)}
        err = refusal(daemon, "jobs.submit", kind=kind, params=params)
        assert str(err).endswith(
            f"params.dataset: {missing}: no such file or folder on the daemon's machine"
        ), err
        assert err.data == {"param": "params.dataset", "value": missing}
    assert daemon.call("jobs.list")["total"] == before  # nothing was queued

    # An import's name names a file in the data dir: a path in it is refused, nothing written.
    for name in ("../../x", str(tmp_path / "elsewhere"), "a/b", ".hidden"):
        err = refusal(daemon, "datasets.import", path=str(outside), name=name)
        assert "name:" in str(err) and err.data[0]["param"] == "name", err
    assert not list(tmp_path.glob("x-*.jsonl")) and not list(tmp_path.glob("elsewhere*"))
    assert daemon.call("datasets.list")["datasets"] == []

    # The way in: import (every line checked), then train on its id.
    dataset = daemon.call("datasets.import", path=str(outside))
    assert Path(dataset["path"]).parent == daemon.paths.datasets_dir
    params = {"dataset": dataset["id"], "base_model": str(tiny_model)}
    job = daemon.call("jobs.submit", kind="train", params=params)
    assert job["params"]["dataset"] == dataset["path"]
    daemon.call("jobs.cancel", id=job["id"])


def test_a_link_in_a_dataset_folder_never_leads_a_job_out_of_the_data_dir(
    daemon: Daemon, tiny_model: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "private.jsonl"
    secret.write_text('{"text": "root-only hunter2hunter2"}\n')
    secret.chmod(0o600)
    folder = daemon.paths.datasets_dir / "mixed"
    folder.mkdir(parents=True)
    write_dataset(folder / "a.jsonl", 20)
    (folder / "b.jsonl").symlink_to(secret)
    params = {"base_model": str(tiny_model), "dataset": str(folder), "max_steps": 1}

    # At submit: refused, naming the link and where it leads.
    err = refusal(daemon, "jobs.submit", kind="train", params=params)
    assert f"{folder / 'b.jsonl'}: leads to {secret}, outside the data dir" in str(err), err
    assert err.data == {"param": "params.dataset"}

    # Added after the job was queued: the engine refuses it as it reads.
    (folder / "b.jsonl").unlink()
    job = daemon.call("jobs.submit", kind="train", params=params)
    (folder / "b.jsonl").symlink_to(secret)
    failed = daemon.wait_job(job["id"], {"completed", "failed"}, 120)
    assert failed["status"] == "failed"
    assert f"{folder / 'b.jsonl'}: leads to {secret}, outside the data dir" in failed["error"]
    logs = daemon.call("jobs.logs", id=job["id"], limit=1000)
    assert "hunter2" not in json.dumps(logs)
