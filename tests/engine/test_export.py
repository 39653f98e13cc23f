"""The `export` job on the tiny model: an adapter leaves as the GGUF LoRA adapter llama.cpp's own
converter writes (read back with `gguf`), and a DoRA adapter is refused as an adapter, saying
why and what works. (A whole-model export needs a tokenizer llama.cpp knows: see
test_real_model, on SmolLM2.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.errors import EngineError
from engine.llama_cpp_tools import script
from engine.synthetic import write_dataset
from tests.conftest import engine_job, job_spec, run_engine
from tests.support.cli import forge
from tests.support.daemon_harness import Daemon


@pytest.fixture(autouse=True)
def converter() -> None:
    try:
        script("convert_lora_to_gguf.py")
    except EngineError as exc:
        pytest.skip(str(exc))


def trained(tiny_model: Path, root: Path, method: str) -> Path:
    data = write_dataset(root / "data" / "chat.jsonl", 40, seed=5)
    params = {
        "base_model": str(tiny_model),
        "dataset": str(data),
        "method": method,
        "rank": 4,
        "alpha": 8,
        "max_steps": 2,
        "max_seq_len": 256,
        "batch_size": 4,
    }
    engine_job("train", params, root, f"train-{method}")
    return root / f"train-{method}" / "adapter"


def export(root: Path, name: str, **params: Any) -> list[dict[str, Any]]:
    """An export job through `python -m engine`; its exit is the test's to judge."""
    return run_engine(job_spec("export", params, root, name), root / name)


def test_a_lora_adapter_leaves_as_the_gguf_lora_llama_cpp_writes(
    tiny_model: Path, tmp_path: Path
) -> None:
    import gguf
    from safetensors.torch import load_file

    adapter = trained(tiny_model, tmp_path, "lora")
    out = tmp_path / "tiny-lora.gguf"
    events = export(tmp_path, "export", adapter=str(adapter), output=str(out))
    assert events[-1]["code"] == 0, (events[-1]["stderr"][-2000:], events[-3:-1])
    artifact = next(e for e in events if e.get("type") == "artifact")
    assert (artifact["kind"], artifact["path"]) == ("gguf", str(out))
    assert artifact["gguf_type"] == "adapter"

    reader = gguf.GGUFReader(str(out))
    meta = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert (meta["general.type"], meta["adapter.type"]) == ("adapter", "lora")
    assert meta["adapter.lora.alpha"] == 8.0
    assert meta["general.architecture"] == "llama"
    tensors = {t.name: t for t in reader.tensors}
    peft = load_file(adapter / "adapter_model.safetensors")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert len(tensors) == len(peft)  # every A and B, nothing else
    # llama.cpp's names; v_proj is not re-ordered, so its factors are PEFT's, in f16.
    a = tensors["blk.0.attn_v.weight.lora_a"]
    b = tensors["blk.0.attn_v.weight.lora_b"]
    prefix = "base_model.model.model.layers.0.self_attn.v_proj"
    for got, name in ((a, "lora_A"), (b, "lora_B")):
        want = peft[f"{prefix}.{name}.weight"].float().numpy()
        assert got.data.shape == want.shape
        assert abs(got.data.astype("float32") - want).max() < 1e-3
    assert a.data.shape[0] == config["r"] == 4


def test_a_dora_adapter_is_refused_as_an_adapter_and_says_how_it_can_leave(
    tiny_model: Path, tmp_path: Path
) -> None:
    adapter = trained(tiny_model, tmp_path, "dora")
    out = tmp_path / "tiny-dora.gguf"
    events = export(tmp_path, "export", adapter=str(adapter), output=str(out))
    assert events[-1]["code"] == 1
    error = next(e for e in events if e.get("type") == "error")["message"]
    assert error.startswith("params.merged: ") and "DoRA" in error and "merged = true" in error
    assert not out.exists()


def test_forge_models_export_runs_the_job_through_the_daemon(
    daemon: Daemon, tiny_model: Path, tmp_path: Path
) -> None:
    """`forge models export FOLDER -o FILE` submits an export job, follows it to its end, and the
    file is a q8_0 GGUF adapter; a second export to the same file is refused, naming the param."""
    import gguf

    adapter = trained(tiny_model, tmp_path, "lora")
    out = tmp_path / "cli.gguf"
    done = forge(
        "models", "export", str(adapter), "-o", str(out), "--outtype", "q8_0", home=daemon.home
    )
    assert done.returncode == 0, done.stderr
    assert f"exporting {adapter} to {out}" in done.stdout
    reader = gguf.GGUFReader(str(out))
    assert reader.fields["general.type"].contents() == "adapter"
    # q8_0 where a row splits into its blocks of 32; the rank-4 side stays f16, as llama.cpp does.
    assert {t.tensor_type.name for t in reader.tensors} == {"Q8_0", "F16"}
    again = forge("models", "export", str(adapter), "-o", str(out), home=daemon.home)
    assert again.returncode != 0
    assert f"params.output: {out} already exists" in again.stdout + again.stderr
