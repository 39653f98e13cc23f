"""How a mission's time budget is divided among its jobs, and what its ETA is.

The budget a person sets (`agent.max_train_minutes`, or `--set minutes=` at approval) is wall
time for the whole mission: the train job's loading and steps, the eval job's loading, held-out
loss of every model and generated answers, and the deploy. The evaluation gets a bounded share,
sized from what the base's calibration measured on this machine (rows scored, answers
generated), training gets the rest, and the ETA is the sum of what each part should take. Pure
arithmetic over the measures, so the rules are easy to read and to test; without a measure the
split is by shares alone and there is no ETA.
"""

from __future__ import annotations

import math
from typing import Any

from forge_api.mission_data import Timing
from forge_api.names import SET_ANSWER_TOKENS

EVAL_SHARE = 0.25
"""Of the budget, at most this much goes to the evaluation (loading included)."""
GENERATIONS, MAX_NEW_TOKENS = 4, 64
"""Answers a mission's eval generates per model, and their length, where the budget holds them."""
EVAL_BATCH = 8
"""Prompts the eval job decodes at once (`engine.evaluate.EVAL_BATCH`)."""
MIN_EVAL_ROWS, UNMEASURED_EVAL_ROWS = 4, 32
"""Held-out rows scored at least, and where nothing was measured."""
MIN_STEPS = 20
"""Steps a mission trains at least, where the budget pays for them: a handful of new files
still moves the adapter."""
JOB_START_S = 2.0
"""A job's start and end around its engine's work: spawning, its events, recording it."""


def _speed(measured: dict[str, Any] | None, key: str) -> float:
    value = (measured or {}).get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0


def schedule(
    *,
    approx_tokens: int,
    max_seq_len: int,
    val_fraction: float,
    budget_minutes: float | None,
    measured: dict[str, Any] | None,
    models: int = 2,
    deploys: bool = False,
    set_answers: tuple[int, int] = (0, 0),
) -> Timing:
    """Divide the budget: the eval sized to at most EVAL_SHARE of it (fewer answers, shorter,
    then fewer rows, as the measures say), training the rest less the deploy; and the ETA from
    the same measures. `models`: scored by the eval (base, new adapter, and the deployed one);
    `deploys`: a deploy is expected to follow (Ollama configured for missions); `set_answers`:
    the base's answers still to write, once per base, for the eval's general held-out set and
    the train job's replay set (`engine.held_out.answers_to_make`)."""
    budget = budget_minutes * 60 if budget_minutes else None
    rows_held = max(1, math.ceil(approx_tokens * val_fraction / max(max_seq_len, 1)))
    train_tps = _speed(measured, "tokens_per_s")
    eval_tps = _speed(measured, "eval_tokens_per_s") or train_tps * 3  # no backward pass
    # Unmeasured (no calibration here): a decoded token costs about 64 tokens of forward pass.
    gen_step = (_speed(measured, "gen_step_s") or 64 / eval_tps) if train_tps else 0.0
    load = _speed(measured, "load_s")
    if not train_tps:  # nothing measured: shares only
        return Timing(
            train_budget_s=budget * (1 - EVAL_SHARE) if budget else None,
            min_steps=MIN_STEPS,
            eval_rows=min(rows_held, UNMEASURED_EVAL_ROWS),
            generations=GENERATIONS,
            max_new_tokens=MAX_NEW_TOKENS,
        )

    def eval_time(rows: int, gens: int, new: int) -> float:
        answers = math.ceil(gens / EVAL_BATCH) * new * gen_step if gens else 0.0
        return JOB_START_S + load + models * (rows * max_seq_len / eval_tps + answers)

    gens, new, rows = GENERATIONS, MAX_NEW_TOKENS, rows_held
    if budget:
        room = budget * EVAL_SHARE
        # Answers first give way (shorter, then fewer), to leave half the share to the loss.
        while gens and eval_time(MIN_EVAL_ROWS, gens, new) > JOB_START_S + room / 2:
            if new > 16:
                new //= 2
            else:
                gens -= 1
        per_row = models * max_seq_len / eval_tps
        fits = int((JOB_START_S + room - eval_time(0, gens, new)) // per_row)
        rows = min(rows_held, max(MIN_EVAL_ROWS, fits))
    general_s, replay_s = (
        math.ceil(n / EVAL_BATCH) * SET_ANSWER_TOKENS * gen_step for n in set_answers
    )
    eval_s = eval_time(rows, gens, new) + general_s
    deploy_s = JOB_START_S + load if deploys else 0.0

    batch = int((measured or {}).get("batch_size") or 1)
    step_s = batch * max_seq_len / train_tps
    # The start, loading, the replay set where the base has none yet, and the batch-sizing pass.
    setup = JOB_START_S + load + replay_s + step_s
    epoch_s = approx_tokens * (1 - val_fraction) / train_tps
    train_budget = None
    min_steps = MIN_STEPS
    if budget:
        train_budget = max(budget - eval_s - deploy_s, setup + step_s)
        min_steps = max(1, min(MIN_STEPS, int((train_budget - setup) // step_s)))
    loop = max(epoch_s, min_steps * step_s)
    train_s = setup + loop
    if train_budget is not None:
        train_s = min(train_s, train_budget)
    return Timing(
        train_budget_s=round(train_budget, 1) if train_budget is not None else None,
        min_steps=min_steps,
        eval_rows=rows,
        generations=gens,
        max_new_tokens=new,
        train_s=round(train_s, 1),
        eval_s=round(eval_s, 1),
        deploy_s=round(deploy_s, 1),
        eta_s=round(train_s + eval_s + deploy_s, 1),
    )
