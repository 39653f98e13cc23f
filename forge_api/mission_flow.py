"""A mission's life as one table: its steps (the job each runs, the stage it is in meanwhile,
the step that follows) and every stage it may move to from each stage. The store writes a
mission's stage only through `check_transition`, in the transaction that writes it, so no code
path can move a mission where this table does not lead; a new stage or step is a row here,
checked when this module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from forge_api.names import MissionStage, MissionStep


@dataclass(frozen=True)
class Step:
    """One step of a mission: the kind of job it runs, the mission's stage while that job is
    queued or running, and the step that follows (None: the mission is done after it)."""

    kind: MissionStep
    stage: MissionStage
    then: MissionStep | None


STEPS: tuple[Step, ...] = (
    Step("train", "training", "eval"),
    Step("eval", "evaluating", "deploy"),
    Step("deploy", "deploying", None),
)
STEP_STAGES: dict[str, MissionStage] = {s.kind: s.stage for s in STEPS}
"""The stage a mission is in while the job of each of its steps is queued or running."""
ACTIVE_MISSION_STAGES: tuple[MissionStage, ...] = ("approved", *STEP_STAGES.values())
"""The stages of a mission whose chain is running: approved, or in one of its steps."""

_RUNNING: tuple[MissionStage, ...] = tuple(s.stage for s in STEPS)
TRANSITIONS: dict[MissionStage, frozenset[MissionStage]] = {
    # A person decides; a newer proposal for the same source supersedes an open one.
    "proposed": frozenset({"approved", "rejected", "superseded"}),
    # Approval queues the first step's job (its stage); a chain that could not start fails.
    "approved": frozenset({"training", "failed"}),
    # Each step's job is queued in its stage, and the next one's moves the mission on; a step
    # may be queued again in its own stage (a retry, a deploy decided after the eval).
    "training": frozenset({"training", "evaluating", "failed"}),
    "evaluating": frozenset({"evaluating", "deploying", "done", "failed"}),
    "deploying": frozenset({"deploying", "done", "failed"}),
    # A failed mission is retried from the step that failed, or put away.
    "failed": frozenset({*_RUNNING, "dismissed"}),
    "done": frozenset(),
    "rejected": frozenset(),
    "superseded": frozenset(),
    "dismissed": frozenset(),
}


class StageTransitionError(ValueError):
    """A mission was asked to move where its life does not lead."""


def check_transition(mission_id: str, current: str, stage: str) -> None:
    """Raise StageTransitionError unless a mission in `current` may move to `stage`."""
    allowed = TRANSITIONS.get(current)  # type: ignore[call-overload]
    if allowed is None or stage not in allowed:
        can = ", ".join(sorted(allowed or ())) or "nowhere: it has ended"
        raise StageTransitionError(
            f"mission {mission_id} is {current} and cannot become {stage} (it can become: {can})"
        )


def _check_table() -> None:
    """Every stage has its row, every row leads to known stages, every step's next step exists."""
    stages = set(get_args(MissionStage))
    if set(TRANSITIONS) != stages:
        raise AssertionError(
            f"TRANSITIONS rows differ from MissionStage: {set(TRANSITIONS) ^ stages}"
        )
    for stage, targets in TRANSITIONS.items():
        if not targets <= stages:
            raise AssertionError(f"{stage} leads to unknown stages {targets - stages}")
    kinds = {s.kind for s in STEPS}
    if kinds != set(get_args(MissionStep)) or any(s.then and s.then not in kinds for s in STEPS):
        raise AssertionError("STEPS must name every MissionStep once, and only known next steps")


_check_table()
