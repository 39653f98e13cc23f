"""Changes a person makes to a mission's plan before approving it (`approve --set key=value`).

The plan's params are train params, so a change is checked by the same model the train job
runs with, and a bad one is refused naming the key, before anything starts. The base model
goes through the registry's one resolver, as everywhere else a model is asked for.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from forge_api.jobs import TrainParams, parse_params
from forge_api.mission_data import MissionData, Plan
from forge_api.protocol import INVALID_PARAMS
from forged.registry import ModelRegistry, RegistryError
from forged.rpc import RpcError, params_error

# Short names a person may type for the params they change most.
ALIASES = {"steps": "max_steps", "minutes": "max_minutes", "time_budget": "max_minutes"}
# Fixed by the mission itself: its material.
FIXED = {"dataset"}


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
    return MissionData(plan=changed, base_model=checked.get("base_model", data.base_model))
