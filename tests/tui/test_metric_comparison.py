"""The deploy dialog marks a model better only where it is better by more than an eval's noise."""

from __future__ import annotations

import pytest

from tui.widgets.metric_comparison import best_index

pytestmark = pytest.mark.unit


def test_a_mark_goes_only_to_a_clear_lead() -> None:
    assert best_index("eval_loss", [2.0, 2.5]) == 0
    assert best_index("eval_loss", [2.5, 2.0, None]) == 1
    # -1 % loss is within the noise; the same chrF of the same answers marks nobody.
    assert best_index("eval_loss", [2.475, 2.5]) is None
    assert best_index("chrf", [31.2, 31.2]) is None
    assert best_index("chrf", [31.9, 31.2]) is None
    assert best_index("chrf", [35.0, 31.2]) == 0
    assert best_index("perplexity", [None, 12.0]) is None  # nothing to compare with
