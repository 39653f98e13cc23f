"""The `merge` job: fold an adapter into its base and save a standalone model folder.

The merged folder is checked before it is kept: reloaded from disk, it must give the same
logits as base + adapter on a probe batch.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.events import Emitter
from engine.model_folder import inspect_model_folder
from engine.model_source import base_for, resolve_adapter
from forge_api.jobs import JobSpec, MergeParams
from forge_api.run_dir import RunDir

PROBE = [
    [{"role": "user", "content": "What does the forge daemon do?"}],
    [{"role": "user", "content": "Say adapter 3 times."}],
]
ULPS = 64
"""How many float rounding steps, at the logits' own scale, merged weights may drift from base +
adapter: folding B·A into W rounds differently from adding it at run time."""


def tolerance(logits: Any) -> float:
    """The largest logit difference that is rounding, for these logits' dtype and size."""
    import torch

    scale = max(1.0, float(logits.abs().max()))
    return ULPS * float(torch.finfo(logits.dtype).eps) * scale


def probe_logits(model: Any, tokenizer: Any) -> Any:
    import torch

    texts = [
        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in PROBE
    ]
    if tokenizer.pad_token is None:  # many base tokenizers have none; the probe pads its batch
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        return model(**batch).logits


def merge_and_verify(base_dir: Path, adapter: Path, out: Path, events: Emitter) -> float:
    """Write base + adapter folded together to `out`; EngineError unless it reloads the same.

    Returns the largest logit difference found on the probe batch.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(
        base_dir, local_files_only=True, dtype=torch.float32
    )
    model = PeftModel.from_pretrained(base, adapter)
    expected = probe_logits(model, tokenizer)
    events.log(f"merging {adapter} into {base_dir.name}")
    merged = model.merge_and_unload()
    shutil.rmtree(out, ignore_errors=True)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    reloaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    got = probe_logits(reloaded, tokenizer)
    diff = float((got - expected).abs().max())
    allowed = tolerance(expected)
    same_top = bool((got.argmax(-1) == expected.argmax(-1)).all())
    if diff > allowed or not same_top:
        raise EngineError(
            f"the merged model's logits differ from base + adapter by {diff:.2e} (rounding "
            f"allows {allowed:.2e}){'' if same_top else ', and its top tokens differ'}"
        )
    events.log(
        f"merged model matches base + adapter (max logit difference {diff:.2e}, "
        f"rounding allows {allowed:.2e}; the same top token everywhere)"
    )
    return diff


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    p = spec.typed_params()
    assert isinstance(p, MergeParams)
    base_dir = base_for(p.base_model, p.adapter, spec.models_dir)
    adapter = resolve_adapter(p.adapter)
    final = Path(spec.models_dir) / p.name
    if final.exists():
        raise EngineError(f"params.name: {final} already exists; choose another name")
    events.progress(1, 3, stage="merge")
    work = RunDir.of(spec.run_dir).merged_partial
    diff = merge_and_verify(base_dir, adapter, work, events)
    events.progress(2, 3, stage="verified")
    final.parent.mkdir(parents=True, exist_ok=True)
    work.rename(final)
    info = inspect_model_folder(final)
    events.progress(3, 3, stage="done")
    events.artifact(
        "merged-model",
        str(final),
        name=p.name,
        base=str(base_dir),
        adapter=str(adapter),
        max_logit_diff=diff,
        **info,
    )
    return {"model": str(final), "max_logit_diff": diff}
