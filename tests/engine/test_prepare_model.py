"""`python -m engine` with the prepare-model job: the tiny Llama, deterministic, and folder checks
that name the file that is wrong."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.gguf_check import NotGGUF, check_gguf
from engine.model_folder import inspect_model_folder, weights_digest
from tests.conftest import run_engine
from tests.engine.test_real_model import smollm2_gguf


def spec_for(root: Path, params: dict[str, object]) -> dict[str, object]:
    return {
        "job_id": "t",
        "kind": "prepare-model",
        "params": params,
        "run_dir": str(root / "run"),
        "models_dir": str(root / "models"),
        "datasets_dir": str(root / "datasets"),
    }


def test_tiny_model_is_a_small_llama_with_a_chat_template(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    info = inspect_model_folder(tiny_model)
    assert info["architecture"] == "LlamaForCausalLM"
    assert 1_000_000 <= info["parameters"] <= 5_000_000
    assert info["has_chat_template"]
    tok = AutoTokenizer.from_pretrained(tiny_model)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        tokenize=False,
    )
    assert text == "<|user|>\nhi<|end|>\n<|assistant|>\nhello<|end|>\n"
    ids = tok("def forged(): pass")["input_ids"]
    assert tok.decode(ids) == "def forged(): pass"
    assert len(ids) < len("def forged(): pass")  # BPE merges, not bytes
    mask = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        return_assistant_tokens_mask=True,
        return_dict=True,
    )["assistant_masks"]
    assert 0 < sum(mask) < len(mask)  # the loss can be masked to the answer
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.num_hidden_layers == 4


def test_build_is_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    # Built again by a cold `python -m engine` (the fixture's was forked from the warm host).
    events = run_engine(spec_for(tmp_path, {}), tmp_path / "run", cold=True)
    assert events[-1]["code"] == 0, events[-1]
    done = next(e for e in events if e["type"] == "done")
    rebuilt = tmp_path / "models" / "tiny-llama"
    assert weights_digest(rebuilt) == weights_digest(tiny_model) == done["summary"]["sha256"]
    kinds = [e["type"] for e in events]
    assert kinds.index("checkpoint") < kinds.index("artifact") < kinds.index("done")


def test_verify_reports_the_folder(tiny_model: Path, tmp_path: Path) -> None:
    events = run_engine(spec_for(tmp_path, {"path": str(tiny_model)}), tmp_path / "run")
    assert events[-1]["code"] == 0
    artifact = next(e for e in events if e["type"] == "artifact")
    assert artifact["path"] == str(tiny_model) and artifact["kind"] == "base-model"
    assert "checkpoint" not in [e["type"] for e in events]


def test_verify_names_what_is_wrong(tiny_model: Path, tmp_path: Path) -> None:
    cases: dict[str, tuple[Callable[[Path], object], str]] = {
        "no-config": (lambda d: (d / "config.json").unlink(), "config.json: missing"),
        "bad-json": (
            lambda d: (d / "config.json").write_text('{\n"a": 1,\n}'),
            "config.json:3: not valid JSON",
        ),
        "no-tokenizer": (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer"),
        "torn-weights": (
            lambda d: (d / "model.safetensors").write_bytes(b"\xff" * 16),
            "model.safetensors: not a safetensors file",
        ),
    }
    for name, (damage, expected) in cases.items():
        folder = tmp_path / name
        shutil.copytree(tiny_model, folder)
        damage(folder)
        events = run_engine(
            spec_for(tmp_path / f"r-{name}", {"path": str(folder)}), tmp_path / f"r-{name}"
        )
        assert events[-1]["code"] == 1, name
        error = next(e for e in events if e["type"] == "error")
        assert expected in error["message"], (name, error)


def test_bad_spec_is_reported_not_crashed(tmp_path: Path) -> None:
    spec = spec_for(tmp_path, {"layers": "four"})
    events = run_engine(spec, tmp_path / "run")
    assert events[-1]["code"] == 2
    assert "layers" in next(e for e in events if e["type"] == "error")["message"]


def hostile_ggufs(folder: Path, real: Path | None) -> dict[str, tuple[bytes, str]]:
    """GGUF files a person might be handed, each with what the import must say of it."""
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 3) + b"key"
    cases = {
        # 51 bytes declaring an array of 2^60 numbers: what `gguf` would try to read.
        "huge-array": (head + struct.pack("<IIQ", 9, 0, 2**60), "an array of 1,152,921,"),
        "huge-string": (head + struct.pack("<IQ", 8, 2**62), "bytes declared"),
        "not-gguf": (b"PK\x03\x04" + b"\x00" * 60, "it does not start with GGUF"),
        "version-9": (b"GGUF" + struct.pack("<IQQ", 9, 0, 0), "version 9"),
        "many-tensors": (b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0), "tensors of 1,099,"),
    }
    if real is not None:  # a real model's file, cut short mid-vocabulary
        cases["truncated"] = (real.read_bytes()[:200_000], "declared")
    return cases


def test_a_hostile_gguf_is_refused_at_once_saying_why(tmp_path: Path) -> None:
    real = smollm2_gguf()
    check_gguf(real)  # a real file passes, vocabulary and all
    for name, (content, expected) in hostile_ggufs(tmp_path, real).items():
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(content)
        with pytest.raises(NotGGUF) as refused:
            check_gguf(path)
        message = str(refused.value)
        assert f"{path}: not a valid GGUF file: " in message and expected in message, message
    # Through the import job: the job fails in a moment, saying so, its memory never grown.
    bad = tmp_path / "huge-array.gguf"
    events = run_engine(spec_for(tmp_path / "job", {"path": str(bad)}), tmp_path / "job")
    assert events[-1]["code"] == 1
    error = next(e for e in events if e["type"] == "error")
    assert "not a valid GGUF file: an array of" in error["message"], error
