"""Changes a person makes to a mission's plan before approving it (`approve --set key=value`).

The plan's params are train params, so a change is checked by the same model the train job
runs with, and a bad one is refused naming the key, before anything starts. The base model
goes through the registry's one resolver, as everywhere else a model is asked for. Every
change times the plan again (`timed`): its `max_minutes` is the whole mission's wall time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.mission_time import GENERATIONS, MAX_NEW_TOKENS, schedule
from engine.continuation import continuation_problem
from engine.held_out import answers_to_make
from forge_api.jobs import TrainParams, parse_params
from forge_api.mission_data import MissionData, Plan, Timing
from forge_api.protocol import INVALID_PARAMS
from forged.registry import ModelRegistry, RegistryError
from forged.rpc import RpcError, params_error

# Short names a person may type for the params they change most.
ALIASES = {"steps": "max_steps", "minutes": "max_minutes", "time_budget": "max_minutes"}
# Fixed by the mission itself: its material.
FIXED = {"dataset"}


def with_continuation(data: MissionData, adapter: str | None, about: str = "") -> MissionData:
    """The plan set to continue `adapter` (the source's current one) where it fits the plan
    (`engine.continuation`: same base, method, rank, targets), saying so on the card; else
    from the base, saying why. `about`: what the adapter was trained on, for the card."""
    if data.plan is None:
        return data
    params = {k: v for k, v in data.plan.params.items() if k != "init_adapter"}
    update: dict[str, Any] = {"continues": None, "fresh_start": None}
    if adapter:
        p = TrainParams.model_validate(params)
        problem = continuation_problem(
            Path(adapter),
            base=data.base_model or p.base_model,
            method=p.method,
            rank=p.rank,
            targets=p.target_modules,
        )
        if problem is None:
            params["init_adapter"] = adapter
            update["continues"] = f"continues the source's adapter {adapter}{about}"
        else:
            update["fresh_start"] = (
                f"starts from the base: the source's adapter {adapter} cannot be continued:"
                f" {problem}"
            )
    update["plan"] = data.plan.model_copy(update={"params": params})
    return data.model_copy(update=update)


def changed_plan(data: MissionData, changes: dict[str, Any], models: ModelRegistry) -> MissionData:
    """The mission data to merge for these changes: the new plan, and the new base model."""
    plan = data.plan or Plan()
    params = dict(plan.params)
    for key, value in changes.items():
        name = ALIASES.get(key, key)
        if name in FIXED or name not in TrainParams.model_fields:
            known = sorted(set(TrainParams.model_fields) - FIXED | set(ALIASES))
            raise RpcError(
                INVALID_PARAMS,
                f"set.{key}: not a plan setting; one of: {', '.join(known)}",
                {"param": f"set.{key}", "known": known},
            )
        params[name] = value
    if "base_model" in params and params["base_model"] != plan.params.get("base_model"):
        try:
            params["base_model"] = models.resolve_base(str(params["base_model"]))
        except RegistryError as exc:
            raise RpcError(
                INVALID_PARAMS, f"set.base_model: {exc}", {"param": "set.base_model"}
            ) from None
    try:
        checked = parse_params("train", params).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise params_error(exc, prefix="set") from exc
    changed = plan.model_copy(update={"params": checked, "changed": sorted(changes)})
    base = checked.get("base_model", data.base_model)
    new = data.model_copy(update={"plan": changed, "base_model": base})
    if "init_adapter" not in changes and data.previous_adapter:
        # A change of base, method, rank or targets may end the continuation (or allow it).
        new = with_continuation(new, data.previous_adapter)
        if new.continues and data.continues:
            new = new.model_copy(update={"continues": data.continues})
    kept = {"base_model": base, "continues": new.continues, "fresh_start": new.fresh_start}
    return timed(new, models).model_copy(update=kept)


def measured_here(data: MissionData) -> dict[str, Any] | None:
    """The calibration's measures, where they are of the plan's base model."""
    if data.measured is None:
        return None
    found = data.measured.model_dump(mode="json")
    of = found.get("base_model")
    base = (data.plan.params.get("base_model") if data.plan else None) or data.base_model
    return found if of is None or of == base else None


def set_answers(p: TrainParams, models: ModelRegistry) -> tuple[int, int]:
    """The base's answers still to write for the eval's general set (unless a person's own is
    set) and the train job's replay set (PEFT only: MLX trains without replay)."""
    if not p.base_model:
        return (0, 0)
    try:
        base = Path(models.resolve_base(p.base_model))
    except RegistryError:
        return (0, 0)  # the train job will say what is wrong with the base
    replay = p.general_replay > 0 and p.backend != "mlx"
    general = not models.config.agent.general_dataset
    return answers_to_make(str(models.paths.datasets_dir), base, general, replay)


def timed(data: MissionData, models: ModelRegistry) -> MissionData:
    """The mission data to merge for its plan's timing: the budget divided among its jobs, the
    least steps the budget pays for, and the ETA, recomputed from the same measures whenever
    the plan or the measures change."""
    plan = data.plan or Plan()
    p = parse_params("train", plan.params)
    assert isinstance(p, TrainParams)
    card_tokens = (data.card.approx_tokens if data.card else None) or 0
    found = schedule(
        approx_tokens=card_tokens,
        max_seq_len=p.max_seq_len,
        val_fraction=p.val_fraction,
        budget_minutes=p.max_minutes,
        measured=measured_here(data),
        models=3 if data.previous_adapter else 2,
        deploys=models.config.ollama.deploy_missions,  # Ollama takes missions' adapters
        set_answers=set_answers(p, models),
    )
    params = dict(plan.params)
    if "min_steps" not in plan.changed:  # a person's own setting stands
        params["min_steps"] = found.min_steps
    return MissionData(
        plan=plan.model_copy(update={"params": params}),
        timing=found,
        eta_s=found.eta_s,
    )


def train_job_params(data: MissionData) -> dict[str, Any]:
    """The mission's train job: the plan, with the train job's own share of the budget, no
    held-out loss of its own (the eval job measures the same rows), and the batch sized from
    the calibration's row measure where that holds for this plan."""
    plan = data.plan or Plan()
    params = dict(plan.params)
    if data.timing is not None and data.timing.train_budget_s:
        params["max_minutes"] = round(data.timing.train_budget_s / 60, 3)
    params["evaluate"] = False
    measured = measured_here(data)
    if (
        measured
        and measured.get("plain_bytes_per_row")
        and measured.get("max_seq_len") == params.get("max_seq_len")
        and not params.get("gradient_checkpointing")
    ):
        params["row_bytes"] = int(measured["plain_bytes_per_row"])
    return parse_params("train", params).model_dump(mode="json", exclude_unset=True)


def eval_sizes(timing: Timing | None) -> dict[str, Any]:
    """The eval job's share of the budget: rows scored, answers generated and their length."""
    if timing is None or timing.eval_rows is None:  # a mission proposed before timings
        return {"generations": GENERATIONS, "max_new_tokens": MAX_NEW_TOKENS}
    return {
        "max_rows": timing.eval_rows,
        "generations": timing.generations,
        "max_new_tokens": timing.max_new_tokens,
    }
