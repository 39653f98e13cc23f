"""The `deploy` and Ollama `infer` jobs through `python -m engine`, against a local server that
speaks Ollama's API, driven by the official `ollama` client: both ways of deploying, and every
failure a person can act on, each leaving the deployment that served before still serving."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.synthetic import write_dataset
from forge_api.deploy_mode import ModeError, deploy_mode
from forge_api.jobs import holds_accelerator
from tests.conftest import engine_job, run_engine
from tests.support.ollama_server import FakeOllama

ALIAS = "forge-widgets:latest"


@pytest.fixture(scope="module")
def work(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the tiny model under models/ and a 2-step adapter under train/adapter."""
    root = tmp_path_factory.mktemp("deploy")
    shutil.copytree(tiny_model, root / "models" / "tiny-llama")
    data = write_dataset(root / "chat.jsonl", 40, seed=3)
    params = {"dataset": str(data), "max_steps": 2, "max_seq_len": 256, "rank": 4}
    engine_job("train", params, root, "train")
    return root


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    server = FakeOllama().start()
    yield server
    server.stop()


def deploy(work: Path, name: str, **params: Any) -> list[dict[str, Any]]:
    spec = {
        "job_id": name,
        "kind": "deploy",
        "params": {"adapter": str(work / "train"), "alias": ALIAS, **params},
        "run_dir": str(work / name),
        "models_dir": str(work / "models"),
        "datasets_dir": str(work),
    }
    return run_engine(spec, work / name)


def outcome(events: list[dict[str, Any]]) -> tuple[int, str]:
    errors = [e["message"] for e in events if e["type"] == "error"]
    return events[-1]["code"], errors[-1] if errors else ""


def serving(ollama: FakeOllama) -> str:
    """The digest the alias serves now."""
    return str(ollama.models[ALIAS]["digest"])


def test_merged_and_adapter_deploys_create_tags_the_alias_follows(
    work: Path, ollama: FakeOllama
) -> None:
    # The tiny model has no Ollama counterpart: merged here, the whole folder uploaded.
    merged = deploy(work, "d1", tag="forge-widgets:1", host=ollama.host)
    assert outcome(merged) == (0, "")
    made = ollama.models["forge-widgets:1"]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(made["files"])
    # Where Ollama's importer reads them: rope_theta at the top, the template in
    # tokenizer_config.json (transformers 5 writes neither there).
    config = json.loads(ollama.blobs[made["files"]["config.json"]])
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"]
    assert made["details"]["chat_template_read"] is True
    assert made["template"].startswith("{{- range .Messages }}<|{{ .Role }}|>")
    assert made["parameters"] == {"stop": ["<|end|>"]}
    assert serving(ollama) == made["digest"]
    artifact = next(e for e in merged if e["type"] == "artifact")
    assert (artifact["kind"], artifact["path"], artifact["mode"]) == (
        "ollama-model",
        "forge-widgets:1",
        "merged",
    )

    # With the same base in Ollama, only the adapter goes up, onto it, as the GGUF LoRA
    # adapter llama.cpp's converter writes (which Ollama takes for any architecture).
    onto = deploy(work, "d2", tag="forge-widgets:2", host=ollama.host, ollama_base="llama3.2:1b")
    assert outcome(onto) == (0, "")
    made = ollama.models["forge-widgets:2"]
    assert made["from"] == "llama3.2:1b" and set(made["adapters"]) == {"adapter.gguf"}
    assert ollama.blobs[made["adapters"]["adapter.gguf"]][:4] == b"GGUF"
    assert serving(ollama) == made["digest"]
    # A blob Ollama holds is not sent again (HEAD first): the converter writes the same bytes.
    again = deploy(work, "d3", tag="forge-widgets:3", host=ollama.host, ollama_base="llama3.2:1b")
    logs = [e["message"] for e in again if e["type"] == "log"]
    assert "adapter.gguf: already in Ollama" in logs
    posts = [p for m, p in ollama.requests if m == "POST" and p.startswith("/api/blobs/")]
    assert len(posts) == len(set(posts))


def test_an_ollama_answer_streams_as_tokens(work: Path, ollama: FakeOllama) -> None:
    assert outcome(deploy(work, "d1", tag="forge-widgets:1", host=ollama.host))[0] == 0
    spec = {
        "job_id": "ask",
        "kind": "infer",
        "params": {"ollama_model": ALIAS, "prompt": "how big is a widget", "host": ollama.host},
        "run_dir": str(work / "ask"),
        "models_dir": str(work / "models"),
        "datasets_dir": str(work),
    }
    events = run_engine(spec, work / "ask")
    tokens = [e["text"] for e in events if e["type"] == "token"]
    assert "".join(tokens) == f"{ALIAS} heard: how big is a widget "
    assert len(tokens) == 7  # one per word, as the server sends them
    done = next(e for e in events if e["type"] == "done")
    assert done["summary"]["tokens"] == 7


def test_every_failure_says_what_to_do_and_the_alias_keeps_serving(
    work: Path, ollama: FakeOllama
) -> None:
    ollama.models["qwen2.5:0.5b"] = dict(ollama.models["llama3.2:1b"])
    ollama.models["qwen2.5:0.5b"]["details"] = {"family": "qwen2", "format": "gguf"}
    first = deploy(work, "d1", tag="forge-widgets:1", host=ollama.host, ollama_base="llama3.2:1b")
    assert outcome(first) == (0, "")
    before = serving(ollama)
    tags = set(ollama.models)

    # Ollama not running: nothing listens on the port.
    code, why = outcome(deploy(work, "e1", tag="forge-widgets:2", host="127.0.0.1:9"))
    assert code == 1
    assert why.startswith("Ollama is not reachable at 127.0.0.1:9") and "ollama serve" in why

    # A base model Ollama does not have.
    code, why = outcome(
        deploy(work, "e2", tag="forge-widgets:2", host=ollama.host, ollama_base="llama9:70b")
    )
    assert code == 1 and "'llama9:70b' is not in the Ollama at" in why
    assert "`ollama pull llama9:70b`" in why

    # An adapter for another architecture than the Ollama base's: llama.cpp would refuse it.
    code, why = outcome(
        deploy(work, "e3", tag="forge-widgets:2", host=ollama.host, ollama_base="qwen2.5:0.5b")
    )
    assert code == 1
    assert why.startswith("the adapter is for llama models and the Ollama model qwen2.5:0.5b")
    assert 'mode "merged"' in why

    # A partial upload: the connection drops after 1,000 bytes of the merged weights.
    ollama.cut_uploads_after = 1000
    seen = len(ollama.requests)
    code, why = outcome(deploy(work, "e4", tag="forge-widgets:2", host=ollama.host))
    assert code == 1
    assert "broke while uploading" in why and ".safetensors" in why, why
    ollama.cut_uploads_after = None
    # The job stopped at the failed upload: nothing was created and the alias was not touched.
    after = {path for _, path in ollama.requests[seen:]}
    assert "/api/create" not in after and "/api/copy" not in after, after

    assert serving(ollama) == before and set(ollama.models) == tags


def test_the_server_checks_blob_digests_as_ollama_does(ollama: FakeOllama) -> None:
    wrong = "sha256:" + "0" * 64
    reply = httpx.post(f"http://{ollama.host}/api/blobs/{wrong}", content=b"weights")
    assert reply.status_code == 400 and "digest mismatch" in reply.json()["error"]
    assert httpx.head(f"http://{ollama.host}/api/blobs/{wrong}").status_code == 404


def test_one_deploy_mode_rule_and_what_it_holds() -> None:
    """The registry, the engine and the runner ask the same function; a deploy that may merge
    here counts against jobs.max_parallel (an `auto` one did not, though it merged)."""
    rule = partial(deploy_mode, merged=False)
    assert rule("auto", ollama_base="llama3.2", dora=False)[0] == "adapter"
    assert rule("auto", ollama_base="qwen2.5", dora=False)[0] == "adapter"  # any architecture
    assert rule("auto", ollama_base="llama3.2", dora=True)[0] == "merged"
    assert rule("auto", ollama_base=None, dora=False)[0] == "merged"
    assert rule("merged", ollama_base="llama3.2", dora=False)[0] == "merged"
    assert deploy_mode("adapter", merged=True, ollama_base=None, dora=False)[0] == "merged"
    with pytest.raises(ModeError, match="mode adapter needs the Ollama model"):
        rule("adapter", ollama_base=None, dora=False)
    with pytest.raises(ModeError, match="DoRA adapter cannot go to Ollama as an adapter"):
        rule("adapter", ollama_base="llama3.2", dora=True)
    adapter = {"adapter": "/a", "tag": "t:1"}
    assert holds_accelerator("deploy", adapter | {"mode": "auto", "ollama_base": "phi3"})
    assert holds_accelerator("deploy", adapter | {"mode": "merged"})
    assert not holds_accelerator("deploy", adapter | {"mode": "adapter", "ollama_base": "b"})
    assert not holds_accelerator("deploy", {"merged": "/m", "mode": "merged", "tag": "t:1"})


def test_the_server_refuses_the_safetensors_adapters_ollama_refuses(
    work: Path, ollama: FakeOllama
) -> None:
    """What forge used to send, refused as Ollama's converter refuses it: a float lora_alpha
    (a uint32 in Go), a base architecture other than llama or gemma2, a 1-D tensor (DoRA's
    magnitude vector); and a GGUF adapter for another architecture than its base."""
    from ollama import Client, ResponseError

    api = Client(host=f"http://{ollama.host}")
    adapter = work / "train" / "adapter"
    weights = api.create_blob(adapter / "adapter_model.safetensors")
    config = json.loads((adapter / "adapter_config.json").read_text())

    def create(base: str, **config_changes: Any) -> str:
        written = work / "adapter_config.json"
        written.write_text(json.dumps(config | config_changes))
        files = {
            "adapter_model.safetensors": weights,
            "adapter_config.json": api.create_blob(written),
        }
        with pytest.raises(ResponseError) as refused:
            api.create(model="x:1", from_=base, adapters=files)
        return str(refused.value)

    assert "of type uint32" in create("llama3.2:1b", lora_alpha=8.0)
    ollama.models["qwen2.5:0.5b"] = dict(ollama.models["llama3.2:1b"])
    ollama.models["qwen2.5:0.5b"]["details"] = {"family": "qwen2", "format": "gguf"}
    assert "unsupported architecture" in create("qwen2.5:0.5b", lora_alpha=8)
    # A 1-D tensor (DoRA's lora_magnitude_vector) in the safetensors.
    from safetensors.torch import load_file, save_file

    tensors = load_file(adapter / "adapter_model.safetensors")
    name = next(iter(tensors)).replace("lora_A.weight", "lora_magnitude_vector")
    dora = work / "dora.safetensors"
    save_file(tensors | {name: tensors[next(iter(tensors))][0].clone()}, dora)
    weights = api.create_blob(dora)
    assert "index out of range" in create("llama3.2:1b", lora_alpha=8)
