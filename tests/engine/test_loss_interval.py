"""What decides a mission's gain: the paired bootstrap the gate reads (a consistent gain is one,
noise is not, and the rows of both models must be the same rows), and the default learning rate
that made the gain."""

from __future__ import annotations

import random

import pytest

from engine.loss_interval import paired_change

pytestmark = pytest.mark.unit


def rows(losses: list[float], tokens: int = 100) -> list[tuple[float, int]]:
    return [(loss * tokens, tokens) for loss in losses]


def test_a_gain_on_every_row_is_a_gain_whose_interval_holds_no_zero() -> None:
    rng = random.Random(1)
    old = [rng.uniform(2.0, 3.5) for _ in range(24)]
    new = [x * rng.uniform(0.90, 0.96) for x in old]
    change = paired_change(rows(new), rows(old))
    assert change.rows == 24
    assert -10 < change.pct < -4
    assert change.low_pct < change.pct < change.high_pct < 0


def test_a_change_of_one_percent_up_and_down_the_rows_is_noise() -> None:
    """The case a new user met: -1 % overall, some rows better, some worse."""
    rng = random.Random(2)
    old = [rng.uniform(2.0, 3.5) for _ in range(8)]
    new = [x * (0.93 if i % 2 else 1.05) for i, x in enumerate(old)]
    change = paired_change(rows(new), rows(old))
    assert change.low_pct < 0 < change.high_pct, change
    # The same scores give the same interval: the gate's verdict does not change on a re-read.
    assert paired_change(rows(new), rows(old)) == change


def test_rows_that_are_not_the_same_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="paired rows differ: 2 against 3"):
        paired_change(rows([1.0, 2.0]), rows([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="labelled tokens"):
        paired_change(rows([1.0], 10), rows([1.0], 11))


def test_the_default_learning_rate_follows_the_models_size() -> None:
    """1e-3 for a model like SmolLM2-135M: measured to reach the quality goal in a default
    mission where 2e-4 did not (bench.mission_quality)."""
    from engine.train_setup import size_learning_rate
    from forge_api.jobs import TrainParams

    p = TrainParams(dataset="d")
    assert size_learning_rate(p, 1_000_000)[0] == 5e-3
    assert size_learning_rate(p, 135_000_000)[0] == 1e-3
    assert size_learning_rate(p, 7_000_000_000)[0] == 2e-4
    asked = TrainParams(dataset="d", learning_rate=3e-4)
    assert size_learning_rate(asked, 135_000_000) == (3e-4, "asked for")
