"""The `export` job: what a person runs in llama.cpp or Ollama, written by llama.cpp's own
converter (`engine.llama_cpp_tools`), never by a GGUF writer of ours.

* An adapter becomes a GGUF LoRA adapter (`convert_lora_to_gguf.py`: `general.type = adapter`,
  `adapter.lora.alpha`, tensor names and the q/k order llama.cpp expects for the architecture),
  loaded with `llama-cli -m base.gguf --lora adapter.gguf` or an Ollama `ADAPTER` line.
* `merged` (or no adapter) becomes a whole GGUF model (`convert_hf_to_gguf.py`) with its
  tokenizer, special tokens and chat template in the metadata; an adapter is folded in first
  by the merge job's checked merge.
* DoRA has no GGUF adapter form (llama.cpp's LoRA has no magnitude vector): it leaves merged
  or not at all. PiSSA is saved by training as the ordinary LoRA it converts to, so it leaves
  as one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.events import Emitter
from engine.gguf_import import gguf_metadata
from engine.llama_cpp_tools import script, script_env
from engine.merge import merge_and_verify
from engine.model_source import base_for, resolve_adapter
from forge_api.deploy_mode import is_dora
from forge_api.jobs import ExportParams, JobSpec
from forge_api.run_dir import RunDir


def refuse_dora(adapter: Path) -> None:
    """A DoRA adapter asked for as a GGUF adapter: say why not, and what works."""
    if is_dora(adapter):
        raise EngineError(
            f"params.merged: {adapter} is a DoRA adapter; a GGUF LoRA adapter has no place for "
            "DoRA's magnitude vector (llama.cpp's converter refuses it and Ollama cannot load "
            "it), so it can only leave merged into its base: export it with merged = true"
        )


def convert(command: list[str], events: Emitter) -> None:
    """Run one of llama.cpp's converter scripts; its last words in the error when it fails."""
    events.log("running llama.cpp's " + Path(command[1]).name)
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=script_env())
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise EngineError(
            f"llama.cpp's {Path(command[1]).name} failed (exit {done.returncode}): "
            f"{said[-1] if said else 'no output'}"
        )


def lora_to_gguf(base_dir: Path, adapter: Path, out: Path, outtype: str, events: Emitter) -> None:
    """A PEFT LoRA adapter as a GGUF LoRA adapter, by llama.cpp's convert_lora_to_gguf.py."""
    convert(
        [
            sys.executable, str(script("convert_lora_to_gguf.py")), "--base", str(base_dir),
            "--outtype", outtype, "--outfile", str(out), str(adapter),
        ],
        events,
    )  # fmt: skip


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    p = spec.typed_params()
    assert isinstance(p, ExportParams)
    out = Path(p.output)
    if out.exists():
        raise EngineError(f"params.output: {out} already exists; choose another file")
    if not out.parent.is_dir():
        raise EngineError(f"params.output: the folder {out.parent} does not exist")
    base_dir = base_for(p.base_model, p.adapter, spec.models_dir)
    adapter = resolve_adapter(p.adapter) if p.adapter else None
    partial = RunDir.of(spec.run_dir).export_partial
    if adapter is not None and not p.merged:
        refuse_dora(adapter)
        events.progress(1, 2, stage="convert")
        lora_to_gguf(base_dir, adapter, partial, p.outtype, events)
    else:
        folder = base_dir
        if adapter is not None:
            events.progress(1, 3, stage="merge")
            folder = RunDir.of(spec.run_dir).merged
            merge_and_verify(base_dir, adapter, folder, events)
        events.progress(2, 3, stage="convert")
        convert(
            [
                sys.executable, str(script("convert_hf_to_gguf.py")), str(folder),
                "--outtype", p.outtype, "--outfile", str(partial),
            ],
            events,
        )  # fmt: skip
    meta = gguf_metadata(partial)
    partial.replace(out)
    what = str(meta.get("general.type", "model"))
    size = out.stat().st_size
    summary: dict[str, Any] = {
        "path": str(out),
        "gguf_type": what,
        "architecture": meta.get("general.architecture"),
        "outtype": p.outtype,
        "bytes": size,
    }
    if what == "adapter":
        summary["lora_alpha"] = meta.get("adapter.lora.alpha")
    events.log(
        f"wrote {out} ({size / 2**20:.1f} MiB, a GGUF {what} for "
        f"{summary['architecture']}, {p.outtype})"
    )
    events.artifact("gguf", str(out), **{k: v for k, v in summary.items() if k != "path"})
    return summary
