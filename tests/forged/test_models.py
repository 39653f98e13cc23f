"""The model registry and Ollama deployment through a real daemon: an approved mission ends with
a new Ollama tag (on a local server speaking Ollama's API), a second deploy moves the alias,
rollback moves it back, the playground's Ollama answers stream and stop on cancel; base models
are found in model folders and the Hugging Face cache."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from forge_client.client import RemoteError
from tests.support.cli import forge
from tests.support.daemon_harness import DaemonFactory, ProcessDaemonFactory, wait_for
from tests.support.missions import agent_config, make_repo, next_proposal
from tests.support.ollama_server import FakeOllama

ALIAS = "forge-widgets:latest"


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    server = FakeOllama().start()
    yield server
    server.stop()


def test_an_approved_mission_deploys_and_rollback_restores_the_previous_tag(
    make_daemon: DaemonFactory, tiny_model: Path, ollama: FakeOllama, tmp_path: Path
) -> None:
    daemon = make_daemon(config=agent_config(tiny_model, ollama.host)).start()
    repo = make_repo(tmp_path)
    source = daemon.call("sources.add", path=str(repo))
    mission = next_proposal(daemon, 0)
    daemon.call("missions.approve", id=mission["id"])

    def decided() -> str | None:
        decision: str | None = daemon.call("missions.get", id=mission["id"])["data"].get("deploy")
        return decision

    decision = wait_for(decided, timeout=300)
    data = daemon.call("missions.get", id=mission["id"])["data"]
    eval_job = daemon.call("jobs.get", id=data["eval_job"])
    report = json.loads(Path(eval_job["run_dir"], "eval.json").read_text())
    new, base = report["adapter"]["adapter_eval_loss"], report["base"]["base_eval_loss"]
    # Nothing is deployed yet, so the adapter is measured against the base, and says so.
    assert new < base, f"the mission's adapter should beat the base here: {decision}"
    assert decision.startswith("deploying as forge-widgets:1: it beats the base model")
    assert f"{new:.4f}" in decision and f"{base:.4f}" in decision

    deploy = daemon.wait_job(data["deploy_job"], {"completed", "failed"}, 120)
    assert deploy["status"] == "completed", deploy["error"]
    wait_for(lambda: daemon.call("missions.get", id=mission["id"])["stage"] == "done")
    assert daemon.call("missions.get", id=mission["id"])["data"]["deployed"] == "forge-widgets:1"
    first = ollama.models["forge-widgets:1"]
    assert ollama.models["forge-widgets:latest"]["digest"] == first["digest"]

    # The registry says what the tag was built from, how it scored, and that it serves.
    tags = daemon.call("models.list", kind=["ollama"])["models"]
    assert [t["name"] for t in tags] == ["forge-widgets:1"]
    tag = tags[0]["data"]
    assert tag["source"] == "widgets" and tag["source_id"] == source["id"]
    assert tag["commit"] == data["head"] and tag["mode"] == "merged"
    assert tag["eval"]["adapter"]["eval_loss"] == pytest.approx(new)
    assert tag["current"] is True and tag["alias"] == "forge-widgets:latest"
    adapter = next(
        m
        for m in daemon.call("models.list", kind=["adapter"])["models"]
        if m["id"] == tag["adapter_model_id"]
    )
    assert adapter["data"]["source"] == "widgets" and adapter["data"]["commit"] == data["head"]

    # A second deploy of the same adapter by hand: the next number, the alias follows.
    job = daemon.call("models.deploy", id=adapter["id"])
    assert job["params"]["tag"] == "forge-widgets:2" and job["kind"] == "deploy"
    assert daemon.wait_job(job["id"], {"completed", "failed"}, 120)["status"] == "completed"
    assert (
        ollama.models["forge-widgets:latest"]["digest"]
        == ollama.models["forge-widgets:2"]["digest"]
    )
    ollama.models["forge-widgets:2"]["digest"] = "changed-by-the-test"  # tell the two apart
    ollama.models["forge-widgets:latest"]["digest"] = "changed-by-the-test"

    back = forge("models", "rollback", source["id"], home=daemon.home)
    assert back.stdout.strip() == "forge-widgets:latest serves forge-widgets:1 again", back
    assert ollama.models["forge-widgets:latest"]["digest"] == first["digest"]
    current = {
        m["name"]: m["data"]["current"]
        for m in daemon.call("models.list", kind=["ollama"])["models"]
    }
    assert current == {"forge-widgets:1": True, "forge-widgets:2": False}
    with pytest.raises(RemoteError) as refused:
        daemon.call("models.rollback", alias="forge-widgets:latest")
    assert refused.value.code == -32002 and "nothing older" in refused.value.message

    # The deployed model answers in the playground's way: an infer job, streamed, cancellable.
    ask = daemon.call(
        "jobs.submit",
        kind="infer",
        params={
            "ollama_model": "forge-widgets:latest",
            "prompt": "widget sizes",
            "host": ollama.host,
        },
    )
    assert daemon.wait_job(ask["id"], {"completed", "failed"}, 60)["status"] == "completed"
    with daemon.client() as c:
        c.call("events.subscribe", since=0, job_id=ask["id"], types=["job.token"])
        words = [next(c.events())["data"]["text"] for _ in range(4)]
    assert "".join(words) == "forge-widgets:latest heard: widget sizes "

    ollama.token_delay_s = 0.2
    slow = daemon.call(
        "jobs.submit",
        kind="infer",
        params={"ollama_model": "forge-widgets:1", "prompt": "x " * 200, "host": ollama.host},
    )
    with daemon.client() as c:
        c.call("events.subscribe", since=0, job_id=slow["id"], types=["job.token"])
        next(c.events())
    daemon.call("jobs.cancel", id=slow["id"])
    stopped = daemon.wait_job(slow["id"], {"cancelled", "completed", "failed"}, 30)
    assert stopped["status"] == "cancelled"

    # With Ollama gone, a deploy is refused at once, saying so, rather than queued to fail.
    ollama.stop()
    with pytest.raises(RemoteError) as gone:
        daemon.call("models.deploy", id=adapter["id"])
    assert gone.value.code == -32002 and "not reachable" in gone.value.message


def test_deploy_refusals_name_the_problem(
    make_daemon: DaemonFactory, tiny_model: Path, ollama: FakeOllama
) -> None:
    daemon = make_daemon(config=f'[ollama]\nhost = "{ollama.host}"\n').start()
    job = daemon.call("jobs.submit", kind="prepare-model", params={"path": str(tiny_model)})
    assert daemon.wait_job(job["id"], {"completed", "failed"})["status"] == "completed"
    base = daemon.call("models.list", kind=["base"])["models"]
    stored = next(m for m in base if m["job_id"] == job["id"])
    with pytest.raises(RemoteError) as refused:
        daemon.call("models.deploy", id=stored["id"])
    assert refused.value.code == -32002 and "deploy an adapter or a merged model" in (
        refused.value.message
    )
    with pytest.raises(RemoteError) as missing:
        daemon.call("models.deploy", id="mdl-nope")
    assert missing.value.code == -32001
    with pytest.raises(RemoteError) as bad_tag:
        daemon.call("models.deploy", id=stored["id"], tag="Not A Tag")
    assert bad_tag.value.code == -32602 and "tag" in str(bad_tag.value.data)
    with pytest.raises(RemoteError) as nothing:
        daemon.call("models.rollback", alias="forge-none:latest")
    assert "nothing has been deployed as forge-none:latest" in nothing.value.message


def test_base_models_are_found_in_folders_and_the_hugging_face_cache(
    make_process_daemon: ProcessDaemonFactory, tiny_model: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    shutil.copytree(tiny_model, folder / "my-llama")
    (folder / "torn").mkdir()
    (folder / "torn" / "config.json").write_text('{"model_type": "llama"}')
    snapshot = tmp_path / "hub" / "models--acme--tiny-chat" / "snapshots" / "0123abc"
    shutil.copytree(tiny_model, snapshot)
    daemon = make_process_daemon(config=f'[models]\nfolders = ["{folder}"]\n')
    daemon.start(extra_env={"HF_HUB_CACHE": str(tmp_path / "hub")})

    found = {m["name"]: m for m in daemon.call("models.list", kind=["base"])["models"]}
    assert {"my-llama", "acme/tiny-chat", "torn"} <= set(found)
    for name in ("my-llama", "acme/tiny-chat"):
        data = found[name]["data"]
        assert data["architecture"] == "LlamaForCausalLM" and data["parameters"] == 1_262_720
        assert data["size_bytes"] > 1_000_000
        assert data["trainable"]["peft"]["ok"] is True
        assert data["trainable"]["unsloth"] == {"ok": False, "why": "needs an NVIDIA GPU with CUDA"}
        assert set(data["trainable"]) == {"peft", "unsloth", "mlx"}
    assert found["acme/tiny-chat"]["data"]["hf_id"] == "acme/tiny-chat"
    assert "no tokenizer" in found["torn"]["data"]["problem"]
    # Listed the same way twice: ids are stable, so a client can refer to them.
    again = {m["name"]: m["id"] for m in daemon.call("models.list", kind=["base"])["models"]}
    assert again == {name: m["id"] for name, m in found.items()}

    # Every reference `models ls` shows works as a job's base_model, through one resolver.
    def submitted_base(ref: str) -> str:
        job = daemon.call("jobs.submit", kind="infer", params={"base_model": ref, "prompt": "hi"})
        daemon.call("jobs.cancel", id=job["id"])
        return str(job["params"]["base_model"])

    mine = str((folder / "my-llama").resolve())
    cached = str(snapshot.resolve())
    assert submitted_base(found["my-llama"]["id"]) == mine  # registry id
    assert submitted_base(found["my-llama"]["id"][:11]) == mine  # a unique prefix of it
    assert submitted_base("my-llama") == mine  # name
    assert submitted_base("acme/tiny-chat") == cached  # Hugging Face cache id
    assert submitted_base(str(folder / "my-llama")) == mine  # path
    with pytest.raises(RemoteError) as ambiguous:
        submitted_base("base")  # every found id starts so
    assert "could be any of" in ambiguous.value.message and mine in ambiguous.value.message
    assert ambiguous.value.data["param"] == "params.base_model"
