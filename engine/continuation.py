"""Whether a train job can continue an existing adapter (`params.init_adapter`): the rule the
engine applies before it loads the adapter, and the daemon before it plans a mission that
continues its source's adapter, so the two never disagree.

An adapter continues only on the same base model, by the same method, at the same rank and on
the same projections: anything else would be a different adapter with the old one's weights
forced into it. The optimizer starts fresh either way (a new dataset, a new schedule). The
daemon imports this module: PEFT is imported only where an adapter is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.events import Emitter
from engine.model_source import resolve_adapter, training_record
from forge_api.jobs import TrainParams

UNSUPPORTED_METHODS = {"pissa": "a PiSSA adapter is saved converted to plain LoRA for its base"}
"""Methods whose adapter cannot be trained on from where it ended."""


def _same_path(a: str | None, b: str | Path | None) -> bool:
    if not a or not b:
        return False
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def continuation_problem(
    adapter: Path,
    *,
    base: str | Path,
    method: str,
    rank: int,
    targets: list[str] | str,
    modules: list[str] | None = None,
) -> str | None:
    """Why the adapter in `adapter` cannot be continued by a job with these params (`targets`
    as asked, `modules` as resolved on the model where known); None when it can."""
    if method in UNSUPPORTED_METHODS:
        return f"method {method} cannot continue an adapter ({UNSUPPORTED_METHODS[method]})"
    record: dict[str, Any] = training_record(adapter)
    trained_base = record.get("base_model")
    if not _same_path(str(trained_base) if trained_base else None, base):
        return f"it was trained on {trained_base or 'an unrecorded base'}, not {base}"
    trained_method = record.get("method") or ("dora" if record.get("use_dora") else "lora")
    if trained_method != method:
        return f"it was trained by {trained_method}, this job trains by {method}"
    if record.get("r") != rank:
        return f"it has rank {record.get('r')}, this job asks for rank {rank}"
    trained_targets = record.get("target_modules_asked")
    if modules is not None:
        have = set(record.get("target_modules") or [])
        if have != set(modules):
            return f"it adapts {sorted(have)}, this job adapts {sorted(modules)}"
    elif trained_targets is not None and trained_targets != targets:
        return f"it was trained on target_modules {trained_targets}, this job asks for {targets}"
    elif trained_targets is None and targets != "auto":
        have = set(record.get("target_modules") or [])
        if have != set(targets):
            return f"it adapts {sorted(have)}, this job adapts {sorted(targets)}"
    return None


def describe(adapter: Path) -> str:
    """What an adapter is, for a log line or a card: its method, rank and projections."""
    record = training_record(adapter)
    method = record.get("method") or ("dora" if record.get("use_dora") else "lora")
    modules = ", ".join(sorted(record.get("target_modules") or [])) or "unrecorded projections"
    return f"{method}, rank {record.get('r')}, on {modules}"


def continue_adapter(
    model: Any, p: TrainParams, base: Path, modules: list[str], events: Emitter
) -> Any:
    """The base with `params.init_adapter` loaded trainable, where the adapter fits this job
    (`engine.continuation`); else an error naming the param and why."""
    from peft import PeftModel

    assert p.init_adapter is not None
    folder = resolve_adapter(p.init_adapter, "init_adapter")
    problem = continuation_problem(
        folder, base=base, method=p.method, rank=p.rank, targets=p.target_modules, modules=modules
    )
    if problem:
        raise EngineError(f"params.init_adapter: {folder} cannot be continued: {problem}")
    events.log(f"continuing adapter {folder} ({describe(folder)}); the optimizer starts fresh")
    return PeftModel.from_pretrained(model, str(folder), is_trainable=True)
