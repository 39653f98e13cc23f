"""The names the contract is made of: job kinds and statuses, mission stages, model kinds.

Plain `Literal`s without pydantic, so the CLI can offer them as choices and still start fast;
`forge_api.schema` and `forge_api.jobs` build their models on them.
"""

from __future__ import annotations

from typing import Literal

JobKind = Literal["prepare-model", "train", "eval", "merge", "deploy", "infer", "export"]
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
TERMINAL_JOB_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

# Where a mission is, in one field. `failed` says which step failed and why (retry runs that
# step again); `done` is the end of a chain that ran, whether or not it deployed.
MissionStage = Literal[
    "proposed",
    "approved",
    "training",
    "evaluating",
    "deploying",
    "done",
    "failed",
    "rejected",
    "superseded",
    "dismissed",
]
"""`dismissed`: a failed (or cancelled) mission a person put away; it leaves the list."""
MissionStep = Literal["train", "eval", "deploy"]
ModelKind = Literal["base", "adapter", "merged", "ollama"]

JOB_MAX_SEQ_LEN = 512
"""Tokens per row of a train or eval job that names none (`params.max_seq_len`)."""
MISSION_MAX_SEQ_LEN = 1024
"""Tokens per example of a mission's dataset, train and eval (`agent.max_seq_len`'s default),
and of a dataset built with no model in mind."""
SET_ANSWER_TOKENS = 64
"""The longest answer the base writes for its general held-out and replay sets
(`engine.held_out`), which a mission's time plan counts (`agent.mission_time`)."""
