"""missions.*: the agent's training proposals and the person's decisions on them."""

from __future__ import annotations

from forged.context import Session
from forged.rpc import Registry, invalid_state, lookup
from forged.schema import (
    IdParams,
    Mission,
    MissionApproveParams,
    MissionRejectParams,
    MissionsListParams,
    MissionsListResult,
)


def _get(s: Session, mission_id: str) -> Mission:
    return lookup(s.services.store.get_mission, "mission", mission_id)


def _decide(s: Session, mission_id: str, status: str, reason: str | None) -> Mission:
    mission = _get(s, mission_id)
    if mission.status != "proposed":
        raise invalid_state(
            f"mission {mission.id} is {mission.status}; only a proposed mission can be {status}",
            status=mission.status,
        )
    s.services.bus.publish(s.services.store.decide_mission(mission.id, status, reason))
    return _get(s, mission.id)


def register(reg: Registry[Session]) -> None:
    @reg.method("missions.list", MissionsListParams)
    async def missions_list(p: MissionsListParams, s: Session) -> MissionsListResult:
        """Missions, newest first, by status and source."""
        return MissionsListResult(
            missions=s.services.store.list_missions(p.status, p.source_id, p.limit)
        )

    @reg.method("missions.get", IdParams)
    async def missions_get(p: IdParams, s: Session) -> Mission:
        """One mission with its trigger, dataset card, plan and rationale."""
        return _get(s, p.id)

    @reg.method("missions.approve", MissionApproveParams)
    async def missions_approve(p: MissionApproveParams, s: Session) -> Mission:
        """Approve a proposed mission: its train job starts, and its eval follows."""
        mission = _decide(s, p.id, "approved", None)
        s.services.agent.approve(mission)
        return _get(s, mission.id)

    @reg.method("missions.reject", MissionRejectParams)
    async def missions_reject(p: MissionRejectParams, s: Session) -> Mission:
        """Reject a proposed mission; the reason is kept so it is not proposed again."""
        return _decide(s, p.id, "rejected", p.reason)
