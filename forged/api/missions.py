"""missions.*: the agent's training proposals and the person's decisions on them."""

from __future__ import annotations

from typing import Any, get_args

from forge_api import methods as M
from forge_api.names import MissionStage
from forge_api.schema import (
    IdParams,
    Mission,
    MissionApproveParams,
    MissionRejectParams,
    MissionRetryParams,
    MissionsListParams,
    MissionsListResult,
)
from forged.context import Session
from forged.mission_plan import changed_plan
from forged.rpc import Registry, RpcError, invalid_state, lookup


def _get(s: Session, mission_id: str) -> Mission:
    return lookup(s.services.store.get_mission, "mission", mission_id)


def _in_stage(s: Session, mission_id: str, stage: str, doing: str) -> Mission:
    """The mission, which must be in `stage` for what is asked of it (`doing`: approved,
    retried, …)."""
    mission = _get(s, mission_id)
    if mission.stage != stage:
        raise invalid_state(
            f"mission {mission.id} is {mission.stage}; only a {stage} mission can be {doing}",
            stage=mission.stage,
        )
    return mission


def _approve(s: Session, mission_id: str, changes: dict[str, Any] | None) -> Mission:
    """The approval and the train job, in one transaction; the train job's checks at submit
    first, so a plan this machine cannot run (`--set backend=unsloth` without CUDA) is refused
    before anything is written."""
    mission = _in_stage(s, mission_id, "proposed", "approved")
    data = changed_plan(mission.data, changes, s.services.models) if changes else None
    try:
        s.services.chain.approve(mission, data)
    except RpcError as exc:
        message = f"mission {mission.id} not approved: its train job cannot run: {exc.message}"
        raise RpcError(exc.code, message, exc.data) from None
    return _get(s, mission.id)


def register(reg: Registry[Session]) -> None:
    @reg.method(M.MISSIONS_LIST)
    async def missions_list(p: MissionsListParams, s: Session) -> MissionsListResult:
        """Missions, newest first, by status and source; dismissed ones only when asked for."""
        stages = p.stage or [x for x in get_args(MissionStage) if x != "dismissed"]
        return MissionsListResult(
            missions=s.services.store.list_missions(stages, p.source_id, p.limit)
        )

    @reg.method(M.MISSIONS_GET)
    async def missions_get(p: IdParams, s: Session) -> Mission:
        """One mission with its trigger, dataset card, plan and rationale."""
        return _get(s, p.id)

    @reg.method(M.MISSIONS_APPROVE)
    async def missions_approve(p: MissionApproveParams, s: Session) -> Mission:
        """Approve a proposed mission, with any changes to its plan (`set`): its train job
        starts, and its eval follows."""
        return _approve(s, p.id, p.set)

    @reg.method(M.MISSIONS_REJECT)
    async def missions_reject(p: MissionRejectParams, s: Session) -> Mission:
        """Reject a proposed mission; the reason is kept so it is not proposed again."""
        mission = _in_stage(s, p.id, "proposed", "rejected")
        s.services.store.decide_mission(mission.id, "rejected", p.reason)
        return _get(s, mission.id)

    @reg.method(M.MISSIONS_DISMISS)
    async def missions_dismiss(p: IdParams, s: Session) -> Mission:
        """Put away a failed (or cancelled) mission: it leaves the list, and is kept."""
        mission = _in_stage(s, p.id, "failed", "dismissed")
        s.services.store.decide_mission(mission.id, "dismissed", None)
        return _get(s, mission.id)

    @reg.method(M.MISSIONS_RETRY)
    async def missions_retry(p: MissionRetryParams, s: Session) -> Mission:
        """Run a failed mission again from the step that failed."""
        mission = _in_stage(s, p.id, "failed", "retried")
        s.services.chain.retry(mission)
        return _get(s, mission.id)
