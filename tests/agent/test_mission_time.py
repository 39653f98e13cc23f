"""A mission's time budget is its wall time: the split among its jobs and the ETA it gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.mission_time import EVAL_SHARE, MIN_STEPS, schedule

# What a calibration of SmolLM2-135M measured on two CPU cores at 1024 tokens a row.
SMOLLM2_CPU = {
    "tokens_per_s": 900.0,
    "batch_size": 4,
    "load_s": 6.0,
    "eval_tokens_per_s": 2500.0,
    "gen_step_s": 0.05,
}


def plan(**kw: Any) -> dict[str, Any]:
    return {
        "approx_tokens": 145_000,
        "max_seq_len": 1024,
        "val_fraction": 0.1,
        "budget_minutes": 5.0,
        "measured": SMOLLM2_CPU,
    } | kw


def test_the_parts_add_up_to_the_eta_and_fit_the_budget() -> None:
    s = schedule(**plan(approx_tokens=1_450_000))
    assert s.eta_s is not None and s.train_s and s.eval_s is not None
    assert s.eta_s == pytest.approx(s.train_s + s.eval_s + (s.deploy_s or 0), abs=0.2)
    assert s.eta_s <= 5 * 60  # an epoch takes far longer: the budget holds it
    assert s.eval_s <= EVAL_SHARE * 5 * 60 + 2.5
    assert s.train_budget_s is not None and s.train_budget_s + s.eval_s <= 5 * 60
    # The eval scores a sample of the held-out rows, not all 142 of them.
    assert s.eval_rows is not None and s.generations is not None
    assert 4 <= s.eval_rows < 142 and s.generations >= 1
    # A small dataset is scored whole when that fits.
    assert schedule(**plan()).eval_rows == 15


def test_a_longer_budget_times_a_longer_mission_and_a_deploy_is_counted() -> None:
    short = schedule(**plan())
    longer = schedule(**plan(budget_minutes=10.0, deploys=True, models=3))
    assert longer.eta_s and short.eta_s and longer.eta_s > short.eta_s
    assert longer.deploy_s and longer.deploy_s > 0 and not short.deploy_s


def test_no_minimum_of_steps_the_budget_cannot_pay_for() -> None:
    roomy = schedule(**plan(budget_minutes=60.0, approx_tokens=2_000))
    assert roomy.min_steps == MIN_STEPS  # a handful of files still moves the adapter
    tight = schedule(**plan(budget_minutes=1.0, approx_tokens=2_000))
    assert tight.min_steps is not None and 1 <= tight.min_steps < MIN_STEPS
    assert tight.eta_s is not None and tight.eta_s <= 60


def test_a_tiny_dataset_never_takes_zero_seconds() -> None:
    s = schedule(**plan(approx_tokens=27, budget_minutes=None))
    assert s.eta_s is not None and s.eta_s >= 1
    assert s.train_budget_s is None


def test_without_a_measure_the_split_is_by_shares_and_there_is_no_eta() -> None:
    s = schedule(**plan(measured=None))
    assert s.eta_s is None and s.train_budget_s == pytest.approx(5 * 60 * (1 - EVAL_SHARE))
    assert s.eval_rows is not None and s.eval_rows >= 1 and s.min_steps == MIN_STEPS


def test_the_bases_general_and_replay_answers_are_counted_the_first_time() -> None:
    """A base's first mission writes its general held-out set (in the eval) and its replay set
    (in the train job), 50 answers of up to 64 tokens each: minutes on a CPU, in the ETA."""
    later = schedule(**plan(budget_minutes=None))
    first = schedule(**plan(budget_minutes=None, set_answers=(50, 50)))
    answers_s = 7 * 64 * SMOLLM2_CPU["gen_step_s"]  # 50 answers, 8 at once, 64 tokens
    assert first.eval_s == pytest.approx((later.eval_s or 0) + answers_s, abs=0.2)
    assert first.train_s == pytest.approx((later.train_s or 0) + answers_s, abs=0.2)
    # Within a budget, they come out of training's share, and the whole still fits.
    budgeted = schedule(**plan(budget_minutes=10.0, set_answers=(50, 50)))
    plain = schedule(**plan(budget_minutes=10.0))
    assert budgeted.train_budget_s and plain.train_budget_s
    assert budgeted.train_budget_s == pytest.approx(plain.train_budget_s - answers_s, abs=0.2)
    assert budgeted.eta_s is not None and budgeted.eta_s <= 10 * 60


def test_answers_already_made_for_a_base_are_not_counted(tmp_path: Path) -> None:
    from engine.held_out import (
        HELD_OUT_PROMPTS,
        answers_to_make,
        general_prompts,
        set_path,
        sets_folder,
    )
    from forge_api.names import SET_ANSWER_TOKENS

    datasets, base = tmp_path / "data" / "datasets", tmp_path / "models" / "base"
    base.mkdir(parents=True)
    rest = len(general_prompts()) - HELD_OUT_PROMPTS
    assert answers_to_make(str(datasets), base, True, True) == (HELD_OUT_PROMPTS, rest)
    assert answers_to_make(str(datasets), base, False, False) == (0, 0)
    made = set_path(
        sets_folder(str(datasets)),
        "general",
        base,
        general_prompts()[:HELD_OUT_PROMPTS],
        SET_ANSWER_TOKENS,
    )
    made.parent.mkdir(parents=True)
    made.write_text("{}\n")
    assert answers_to_make(str(datasets), base, True, True) == (0, rest)
