"""Finding models and adapters from what a person typed, never downloading anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import EngineError
from engine.model_source import resolve_adapter, resolve_base


def test_folder_name_and_hf_cache_id(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    assert resolve_base(str(tiny_model), str(tmp_path)) == tiny_model.resolve()
    assert resolve_base("tiny-llama", str(tiny_model.parent)) == tiny_model
    # The Hugging Face cache layout: refs/main names the snapshot that holds the files.
    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_model, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert resolve_base("acme/tiny", str(tmp_path)) == repo / "snapshots" / commit
    with pytest.raises(EngineError, match="not in the local Hugging Face cache"):
        resolve_base("acme/absent", str(tmp_path))


def test_adapter_by_folder_or_run_dir(tmp_path: Path) -> None:
    run = tmp_path / "job-1"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    assert resolve_adapter(str(run)) == (run / "adapter").resolve()
    assert resolve_adapter(str(run / "adapter")) == (run / "adapter").resolve()
    with pytest.raises(EngineError, match=r"params\.adapter: no adapter"):
        resolve_adapter(str(tmp_path))
