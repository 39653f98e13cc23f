"""The `deploy` job: a trained adapter (or a merged model) becomes an Ollama model tag.

Two ways, as Ollama allows:
* adapter: the base is already an Ollama model (`ollama_base`) of an architecture Ollama takes
  LoRA adapters for; only the adapter's files are uploaded, and `create` puts them on it.
* merged: the adapter is folded into its base here (checked against base + adapter) and the
  whole model folder is uploaded; used for any base Ollama has no counterpart or adapters for.

Nothing that exists is changed until the new tag is created and answers `show`; only then is
the alias (e.g. `forge-myrepo:latest`) re-pointed. A failure at any step leaves the previous
deployment serving.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine import control
from engine.errors import EngineError
from engine.events import Emitter
from engine.merge import merge_and_verify
from engine.model_source import base_for, resolve_adapter, resolve_base
from engine.ollama_api import (
    NotFound,
    chat_format,
    client,
    model_type,
    shown_host,
    talking_to,
    upload,
)
from forge_api.deploy_mode import Mode, ModeError, deploy_mode
from forge_api.jobs import DeployParams, JobSpec

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def choose_mode(p: DeployParams, kind: str, arch: str, events: Emitter) -> Mode:
    """`adapter` or `merged` (the one rule, `forge_api.deploy_mode`), said in the log; an
    EngineError when the asked-for mode cannot work."""
    try:
        mode, why = deploy_mode(
            p.mode, merged=p.merged is not None, ollama_base=p.ollama_base, model_type=kind
        )
    except ModeError as exc:
        raise EngineError(f"{exc} (the base is {arch})") from None
    if p.merged is None:
        events.log(why)
    return mode


def run(spec: JobSpec, events: Emitter) -> dict[str, Any]:
    p = spec.typed_params()
    assert isinstance(p, DeployParams)
    where = shown_host(p.host)
    api = client(p.host)
    with talking_to(p.host, "listing its models"):
        api.list()
    events.log(f"Ollama answers at {where}")

    base_dir = base_for(p.base_model, p.adapter, spec.models_dir)
    kind, arch = model_type(base_dir)
    adapter = resolve_adapter(p.adapter) if p.adapter else None
    mode = choose_mode(p, kind, arch, events)
    request: dict[str, Any] = {}
    if mode == "adapter":
        assert adapter is not None and p.ollama_base
        try:
            with talking_to(p.host, f"looking up the base model {p.ollama_base}"):
                api.show(p.ollama_base)
        except NotFound:
            raise EngineError(
                f"the base model {p.ollama_base!r} is not in the Ollama at {where}: run "
                f'`ollama pull {p.ollama_base}` there, or deploy with mode "merged"'
            ) from None
        files = [adapter / name for name in ADAPTER_FILES]
        format_dir = base_dir
        request["from_"] = p.ollama_base
    else:
        if p.merged is not None:
            folder = resolve_base(p.merged, spec.models_dir, key="merged")
        else:
            assert adapter is not None
            events.progress(0, None, stage="merge")
            folder = Path(spec.run_dir) / "merged"
            merge_and_verify(base_dir, adapter, folder, events)
        files = sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith("."))
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
