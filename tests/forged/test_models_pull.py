"""`forge models pull`: a model from a hub speaking the Hugging Face Hub's API (a local one,
through HF_ENDPOINT), cancelled midway and pulled again, resumed across a dropped connection,
registered as a base model; and the real hub where it can be reached."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import forge
from tests.support.daemon_harness import Daemon, ProcessDaemonFactory, wait_for
from tests.support.hf_hub_server import FakeHub

REPO = "forge-test/tiny-llama"


@pytest.fixture
def hub(tiny_model: Path) -> Iterator[FakeHub]:
    server = FakeHub({REPO: tiny_model}).start()
    yield server
    server.stop()


def hub_env(endpoint: str, home: Path) -> dict[str, str]:
    env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(home / "hf"), "HF_HUB_OFFLINE": "0"}
    return env | {"HF_HUB_DISABLE_TELEMETRY": "1"}


def log_of(daemon: Daemon, job_id: str) -> list[str]:
    return [x["line"] for x in daemon.call("jobs.logs", id=job_id)["lines"]]


def test_a_pull_cancelled_midway_resumes_and_registers_the_model(
    make_process_daemon: ProcessDaemonFactory, hub: FakeHub, tiny_model: Path, tmp_path: Path
) -> None:
    env = hub_env(hub.endpoint, tmp_path)
    daemon = make_process_daemon(home=tmp_path / "home").start(extra_env=env)
    weights = tiny_model / "model.safetensors"
    size = weights.stat().st_size

    # Slowly, so the cancel lands in the middle of the weights.
    hub.bytes_per_s = size / 8
    out = forge("models", "pull", REPO, "--no-follow", home=daemon.home, env=env)
    assert out.returncode == 0, out.stderr
    job = daemon.call("jobs.list", kind=["prepare-model"])["jobs"][0]
    assert job["params"]["path"] == f"hf:{REPO}"
    wait_for(lambda: any("downloaded 2" in x for x in log_of(daemon, job["id"])), timeout=60)
    daemon.call("jobs.cancel", id=job["id"])
    assert daemon.wait_job(job["id"], {"cancelled", "failed", "completed"})["status"] == "cancelled"
    pulled = {r for r in hub.requests if r[1].endswith("/model.safetensors") and r[0] == "GET"}
    assert pulled, hub.requests
    assert not (daemon.paths.models_dir / "tiny-llama").exists()

    # Again: the files that arrived before the cancel are not fetched again, and a connection
    # dropped in the middle of the weights is resumed from where it broke.
    done_before = {
        r[1].rsplit("/", 1)[-1] for r in hub.requests if r[0] == "GET" and "/resolve/" in r[1]
    } - {"model.safetensors"}
    assert done_before, hub.requests
    hub.bytes_per_s = None
    hub.cut_once_after = size // 2
    hub.requests.clear()
    again = forge("models", "pull", f"hf:{REPO}", home=daemon.home, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "downloaded 100%" in again.stdout and f"pulled {REPO} as" in again.stdout
    fetched = [r for r in hub.requests if r[0] == "GET" and "/resolve/" in r[1]]
    assert not {r[1].rsplit("/", 1)[-1] for r in fetched} & done_before, fetched
    ranges = [r[2] for r in fetched if r[1].endswith("/model.safetensors")]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1], ranges
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= size // 2  # whole pieces
    # Only what transformers loads: not the ONNX copy the repository also lists.
    assert not any("onnx" in r[1] for r in hub.requests)

    folder = daemon.paths.models_dir / "tiny-llama"
    assert (folder / "model.safetensors").read_bytes() == weights.read_bytes()
    assert (folder / "tokenizer.json").read_bytes() == (tiny_model / "tokenizer.json").read_bytes()
    source = json.loads((folder / "forge_source.json").read_text())
    assert source["hf_id"] == REPO and source["revision"] == hub.commits[REPO]
    bases = daemon.call("models.list", kind=["base"])["models"]
    assert [m["path"] for m in bases if m["name"] == "tiny-llama"] == [str(folder)]


def test_a_model_the_hub_does_not_have_fails_saying_so(
    make_process_daemon: ProcessDaemonFactory, hub: FakeHub, tmp_path: Path
) -> None:
    env = hub_env(hub.endpoint, tmp_path)
    daemon = make_process_daemon(home=tmp_path / "home").start(extra_env=env)
    out = forge("models", "pull", "forge-test/no-such-model", home=daemon.home, env=env)
    assert out.returncode != 0
    job = daemon.call("jobs.list", kind=["prepare-model"])["jobs"][0]
    assert job["status"] == "failed"
    assert "hf:forge-test/no-such-model: the hub refused" in job["error"], job["error"]


def hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.slow
def test_a_pull_from_the_real_hub(
    make_process_daemon: ProcessDaemonFactory, tmp_path: Path
) -> None:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not hub_reachable():
        pytest.skip("huggingface.co is not reachable from here (or HF_HUB_OFFLINE=1)")
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0"}
    daemon = make_process_daemon(home=tmp_path / "home").start(extra_env=env)
    repo = "hf-internal-testing/tiny-random-LlamaForCausalLM"
    out = forge("models", "pull", repo, home=daemon.home, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    folder = daemon.paths.models_dir / "tiny-random-LlamaForCausalLM"
    assert (folder / "config.json").exists()
    assert json.loads((folder / "forge_source.json").read_text())["hf_id"] == repo
