"""Against a real Ollama, when one answers at $OLLAMA_HOST (or 127.0.0.1:11434): the tiny model
trained here is deployed merged, answers through the playground's `infer` job, and is removed.
Skipped, saying so, where no Ollama runs (as in CI)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import httpx
import pytest

from engine.ollama_api import DEFAULT_HOST, client
from engine.synthetic import write_dataset
from tests.conftest import engine_job

HOST = os.environ.get("OLLAMA_HOST") or DEFAULT_HOST


def ollama_version() -> str | None:
    url = HOST if "://" in HOST else f"http://{HOST}"
    try:
        return str(httpx.get(f"{url}/api/version", timeout=2).json()["version"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


@pytest.mark.skipif(
    ollama_version() is None, reason=f"no Ollama answers at {HOST} (set OLLAMA_HOST to use one)"
)
def test_a_real_ollama_serves_the_deployed_tiny_model(tiny_model: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_model, tmp_path / "models" / "tiny-llama")
    data = write_dataset(tmp_path / "chat.jsonl", 40, seed=3)
    params = {"dataset": str(data), "max_steps": 2, "max_seq_len": 256, "rank": 4}
    engine_job("train", params, tmp_path, "train")
    tag, alias = "forge-test-tiny:1", "forge-test-tiny:latest"
    try:
        deploy = {"adapter": str(tmp_path / "train"), "tag": tag, "alias": alias, "mode": "merged"}
        engine_job("deploy", deploy, tmp_path, "deploy")
        names = {m.model for m in client(None).list().models}
        assert {tag, alias} <= names
        ask = {"ollama_model": alias, "prompt": "hello", "max_new_tokens": 8}
        events = engine_job("infer", ask, tmp_path, "ask")
        assert next(e for e in events if e["type"] == "done")["summary"]["tokens"] >= 1
    finally:
        for name in (alias, tag):
            with contextlib.suppress(Exception):  # not created: the assertion above says why
                client(None).delete(name)
