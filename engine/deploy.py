"""The `deploy` job: a trained adapter (or a merged model) becomes an Ollama model tag.

Two ways (the rule is `forge_api.deploy_mode`):
* adapter: the base is already an Ollama model (`ollama_base`); the adapter is converted by
  llama.cpp's own converter into a GGUF LoRA adapter, which Ollama takes as it is, for any
  architecture, with llama.cpp's own tensor names and q/k order; `create` puts it on the base.
* merged: the adapter is folded into its base here (checked against base + adapter) and the
  whole model folder is uploaded, with the two things Ollama's safetensors importer reads only
  where it looks (`forged_files`): a top-level `rope_theta`, and `chat_template` in
  tokenizer_config.json.

Nothing that exists is changed until the new tag is created and answers `show`; only then is
the alias (e.g. `forge-myrepo:latest`) re-pointed. A failure at any step leaves the previous
deployment serving.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine import control
from engine.errors import EngineError
from engine.events import Emitter
from engine.gguf_export import lora_to_gguf
from engine.gguf_import import gguf_metadata
from engine.merge import merge_and_verify
from engine.model_source import base_for, resolve_adapter, resolve_base
from engine.ollama_api import (
    NotFound,
    chat_format,
    client,
    shown_host,
    talking_to,
    upload,
)
from forge_api.deploy_mode import Mode, ModeError, deploy_mode, is_dora
from forge_api.jobs import DeployParams, JobSpec
from forge_api.run_dir import RunDir


def choose_mode(p: DeployParams, adapter: Path | None, events: Emitter) -> Mode:
    """`adapter` or `merged` (the one rule, `forge_api.deploy_mode`), said in the log; an
    EngineError when the asked-for mode cannot work."""
    dora = adapter is not None and is_dora(adapter)
    try:
        mode, why = deploy_mode(
            p.mode, merged=p.merged is not None, ollama_base=p.ollama_base, dora=dora
        )
    except ModeError as exc:
        raise EngineError(str(exc)) from None
    if p.merged is None:
        events.log(why)
    return mode


def same_base(gguf_adapter: Path, name: str, shown: Any) -> None:
    """EngineError unless the Ollama model is of the adapter's architecture: llama.cpp refuses
    to load an adapter on another (`llama-adapter.cpp`: "model arch and LoRA arch mismatch"),
    which Ollama would only find when the tag is first run."""
    ours = gguf_metadata(gguf_adapter).get("general.architecture")
    info = getattr(shown, "modelinfo", None) or {}
    theirs = info.get("general.architecture")
    if theirs and ours and theirs != ours:
        raise EngineError(
            f"the adapter is for {ours} models and the Ollama model {name} is a {theirs} model: "
            'name its own base under [ollama] bases, or deploy with mode "merged"'
        )


def forged_files(folder: Path, staging: Path) -> list[Path]:
    """A merged folder's files as Ollama's safetensors importer must see them.

    It reads `rope_theta` only at the top of config.json (`convert/convert_llama.go`), where
    transformers 5 writes it under `rope_parameters` (so SmolLM2 would run at rope base 10,000
    instead of 100,000), and a chat template only from tokenizer_config.json's `chat_template`
    (`convert/tokenizer.go`), where transformers 5 writes chat_template.jinja. Those two files are
    sent as copies with the value where Ollama reads it; the folder itself is not changed."""
    files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
    sent = []
    for path in files:
        if path.name in ("config.json", "tokenizer_config.json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            added = where_ollama_reads(path.name, data, folder)
            if added:
                staging.mkdir(parents=True, exist_ok=True)
                path = staging / path.name
                path.write_text(json.dumps(data | added, indent=2), encoding="utf-8")
        sent.append(path)
    return sent


def where_ollama_reads(name: str, data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The keys one of a merged folder's two JSON files lacks where Ollama's importer reads."""
    if name == "config.json" and "rope_theta" not in data:
        rope = data.get("rope_parameters")
        if isinstance(rope, dict) and "rope_theta" in rope:
            return {"rope_theta": rope["rope_theta"]}
    template = folder / "chat_template.jinja"
    if name == "tokenizer_config.json" and not data.get("chat_template") and template.exists():
        return {"chat_template": template.read_text(encoding="utf-8")}
    return {}


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    p = spec.typed_params()
    assert isinstance(p, DeployParams)
    where = shown_host(p.host)
    api = client(p.host)
    with talking_to(p.host, "listing its models"):
        api.list()
    events.log(f"Ollama answers at {where}")

    base_dir = base_for(p.base_model, p.adapter, spec.models_dir)
    adapter = resolve_adapter(p.adapter) if p.adapter else None
    mode = choose_mode(p, adapter, events)
    request: dict[str, Any] = {}
    if mode == "adapter":
        assert adapter is not None and p.ollama_base
        try:
            with talking_to(p.host, f"looking up the base model {p.ollama_base}"):
                shown_base = api.show(p.ollama_base)
        except NotFound:
            raise EngineError(
                f"the base model {p.ollama_base!r} is not in the Ollama at {where}: run "
                f'`ollama pull {p.ollama_base}` there, or deploy with mode "merged"'
            ) from None
        events.progress(0, None, stage="convert")
        gguf_adapter = RunDir.of(spec.run_dir).adapter_gguf
        gguf_adapter.unlink(missing_ok=True)
        lora_to_gguf(base_dir, adapter, gguf_adapter, "f16", events)
        same_base(gguf_adapter, p.ollama_base, shown_base)
        files = [gguf_adapter]
        format_dir = base_dir
        request["from_"] = p.ollama_base
    else:
        if p.merged is not None:
            folder = resolve_base(p.merged, spec.models_dir, key="merged")
        else:
            assert adapter is not None
            events.progress(0, None, stage="merge")
            folder = RunDir.of(spec.run_dir).merged
            merge_and_verify(base_dir, adapter, folder, events)
        files = forged_files(folder, RunDir.of(spec.run_dir).upload)
        format_dir = folder
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise EngineError(f"nothing to upload at {', '.join(missing)}")

    digests: dict[str, str] = {}
    sent_bytes = 0
    for number, path in enumerate(files, start=1):
        control.check()
        digests[path.name], sent = upload(api, p.host, path)
        sent_bytes += path.stat().st_size if sent else 0
        events.log(f"{path.name}: " + ("uploaded" if sent else "already in Ollama"))
        events.progress(number, len(files) + 2, stage="upload")
    request["adapters" if mode == "adapter" else "files"] = digests

    template, parameters = chat_format(format_dir)
    parameters |= p.parameters
    control.check()
    with talking_to(p.host, f"creating {p.tag}"):
        for update in api.create(
            model=p.tag,
            template=p.template or template,
            system=p.system or None,
            parameters=parameters or None,
            stream=True,
            **request,
        ):
            events.log(f"ollama: {update.status}")
    with talking_to(p.host, f"checking the new model {p.tag}"):
        shown = api.show(p.tag)
    events.progress(len(files) + 1, len(files) + 2, stage="created")
    if p.alias and p.alias != p.tag:
        with talking_to(p.host, f"pointing {p.alias} at {p.tag}"):
            api.copy(p.tag, p.alias)
        events.log(f"{p.alias} now points at {p.tag}")
    events.progress(len(files) + 2, len(files) + 2, stage="done")
    details = shown.details.model_dump(exclude_none=True) if shown.details else {}
    events.artifact(
        "ollama-model",
        p.tag,
        name=p.tag,
        base=p.ollama_base or str(base_dir),
        host=where,
        alias=p.alias,
        mode=mode,
        adapter=str(adapter) if adapter else None,
        merged=p.merged,
        uploaded_bytes=sent_bytes,
        details=details,
    )
    return {"tag": p.tag, "alias": p.alias, "mode": mode, "host": where}
