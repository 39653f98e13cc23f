"""Whether a train job can continue an existing adapter (`params.init_adapter`): the rule the
engine applies before it loads the adapter, and the daemon before it plans a mission that
continues its source's adapter, so the two never disagree.

An adapter continues only on the same base model, by the same method, at the same rank and on
the same projections: anything else would be a different adapter with the old one's weights
forced into it. The optimizer starts fresh either way (a new dataset, a new schedule). Light
(json and pathlib only): the daemon imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.model_source import training_record

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
