"""The `prepare-model` job: build the tiny local model, or verify a given model folder.

Building runs in stages, and the trained tokenizer is a checkpoint: a job interrupted after it
resumes without training it again. The finished folder appears under the models dir in one
rename, so a half-built model is never mistaken for a good one.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from engine import control
from engine.errors import EngineError
from engine.events import Emitter
from engine.model_folder import inspect_model_folder, weights_digest
from forge_api.jobs import JobSpec, PrepareModelParams
from forge_api.run_dir import RunDir

STAGES = ["tokenizer", "model", "verify"]


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    params = spec.typed_params()
    assert isinstance(params, PrepareModelParams)
    if params.path and params.path.startswith("hf:"):
        return _pull(spec, params.path, params.name, events)
    if params.path and (params.path.startswith("ollama:") or params.path.endswith(".gguf")):
        return _import(spec, params.path, params.name, events)
    if params.path:
        return _verify_only(Path(params.path).expanduser(), events)
    return _build(spec, params.name or TINY, params, events)


TINY = "tiny-llama"


def imported_name(ref: str) -> str:
    """A folder name for an imported model: `SmolLM2-135M-Instruct.Q4_1.gguf` →
    `SmolLM2-135M-Instruct`, `ollama:smollm2:135m` → `ollama-smollm2-135m`."""
    if ref.startswith("ollama:"):
        stem = ref.replace(":", "-").replace("/", "-")
    else:
        stem = re.sub(r"[.-](I?Q\d\w*|F16|F32|BF16)$", "", Path(ref).stem, flags=re.I)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:64] or "imported"


def _import(spec: JobSpec, ref: str, name: str | None, events: Emitter) -> dict[str, Any]:
    from engine.gguf_import import import_gguf, ollama_gguf

    origin: dict[str, Any] = {}
    if ref.startswith("ollama:"):
        gguf_file = ollama_gguf(ref.removeprefix("ollama:"))
        origin["ollama_model"] = ref.removeprefix("ollama:")
    else:
        gguf_file = Path(ref).expanduser().resolve()
    final = Path(spec.models_dir) / (name or imported_name(ref))
    work = RunDir.of(spec.run_dir).work
    shutil.rmtree(work, ignore_errors=True)
    events.progress(0, 2, stage="import")
    started = time.monotonic()
    origin = import_gguf(gguf_file, work, origin, events.log)
    control.check()
    events.progress(1, 2, stage="verify")
    info = inspect_model_folder(work)
    _replace_dir(work, final)
    events.progress(2, 2, stage="done")
    events.artifact("base-model", str(final), name=final.name, imported=origin, **info)
    events.log(
        f"imported {gguf_file.name} as {final} ({info['parameters']:,} parameters) "
        f"in {time.monotonic() - started:.0f} s"
    )
    return {"model": str(final), **info, "imported": origin}


def _pull(spec: JobSpec, ref: str, name: str | None, events: Emitter) -> dict[str, Any]:
    """From the Hugging Face Hub into `.pull/<name>` (kept, so a second pull resumes), checked,
    then into the models dir in one rename and registered."""
    from engine.gguf_import import SOURCE_FILE
    from engine.hf_pull import pull, pulled_name

    final = Path(spec.models_dir) / (name or pulled_name(ref))
    work = Path(spec.models_dir) / ".pull" / final.name
    started = time.monotonic()
    origin = pull(ref, work, events)
    events.progress(1, 1, stage="verify")
    shutil.rmtree(work / ".cache", ignore_errors=True)  # huggingface_hub's resume bookkeeping
    info = inspect_model_folder(work)
    (work / SOURCE_FILE).write_text(json.dumps(origin, indent=2), encoding="utf-8")
    _replace_dir(work, final)
    events.artifact("base-model", str(final), name=final.name, pulled=origin, **info)
    events.log(
        f"pulled {origin['hf_id']} as {final} ({info['parameters'] or '?'} parameters) "
        f"in {time.monotonic() - started:.0f} s"
    )
    return {"model": str(final), **info, "pulled": origin}


def _verify_only(path: Path, events: Emitter) -> dict[str, Any]:
    events.progress(0, 1, stage="verify")
    events.log(f"verifying the model folder {path}")
    info = inspect_model_folder(path.resolve())
    events.progress(1, 1, stage="verify")
    events.artifact("base-model", str(path.resolve()), name=path.name, **info)
    events.log(f"{path.name}: {info['architecture']}, {info['parameters'] or '?'} parameters")
    return {"model": str(path.resolve()), **info}


def _build(spec: JobSpec, name: str, params: PrepareModelParams, events: Emitter) -> dict[str, Any]:
    from engine import tiny_model

    run_dir = Path(spec.run_dir)
    checkpoint = RunDir(run_dir).checkpoints / "tokenizer"
    work = RunDir(run_dir).work
    final = Path(spec.models_dir) / name

    started = time.monotonic()
    events.progress(0, len(STAGES), stage="tokenizer")
    if spec.resume_from and Path(spec.resume_from).is_dir():
        events.log(f"resuming from checkpoint {spec.resume_from}: the tokenizer is already trained")
        checkpoint = Path(spec.resume_from)
    else:
        events.log(f"training a {params.vocab_size}-token BPE tokenizer on the local corpus")
        partial = checkpoint.with_name("tokenizer.partial")
        shutil.rmtree(partial, ignore_errors=True)
        tiny_model.train_tokenizer(params, partial)
        shutil.rmtree(checkpoint, ignore_errors=True)
        partial.rename(checkpoint)
        events.checkpoint(str(checkpoint), step=1, stage="tokenizer")
    control.check()

    events.progress(1, len(STAGES), stage="model")
    events.log(
        f"initialising a Llama: {params.layers} layers, hidden {params.hidden_size}, "
        f"{params.heads} heads, seed {params.seed}"
    )
    shutil.rmtree(work, ignore_errors=True)
    n_params = tiny_model.build_model(params, checkpoint, work)
    control.check()

    events.progress(2, len(STAGES), stage="verify")
    smoke = tiny_model.smoke_test(work)
    info = inspect_model_folder(work)
    if info["parameters"] != n_params:
        raise EngineError(
            f"{work}: saved weights hold {info['parameters']} parameters, the model {n_params}"
        )
    digest = weights_digest(work)
    _replace_dir(work, final)
    events.progress(3, len(STAGES), stage="done")
    events.artifact("base-model", str(final), name=name, sha256=digest, **info)
    seconds = round(time.monotonic() - started, 2)
    events.log(f"built {final} ({n_params:,} parameters) in {seconds} s")
    return {"model": str(final), "parameters": n_params, "sha256": digest, **smoke}


def _replace_dir(src: Path, dst: Path) -> None:
    """Put `src` at `dst`; an older `dst` is moved aside first and removed after."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        dst.rename(old)
    src.rename(dst)
    shutil.rmtree(old, ignore_errors=True)
