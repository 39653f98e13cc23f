"""How sure a loss change between two models is: a paired bootstrap over held-out rows.

Both models score the same rows, so the change is measured row by row and its noise is the
rows' own spread: the rows are drawn again with replacement many times, and each draw's change
in mean token loss (its summed loss over its labelled tokens, as the eval reports it) gives the
interval. A change whose interval holds zero is not a measured gain, however it reads: tried as
a new user would, a -1 % change with the same answers was called a win.
"""

from __future__ import annotations

from dataclasses import dataclass

DRAWS = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Change:
    """The change (%) of one model's mean token loss against another's on the same rows, and
    its bootstrap interval."""

    pct: float
    low_pct: float
    high_pct: float
    rows: int


def paired_change(
    new: list[tuple[float, int]],
    old: list[tuple[float, int]],
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = 0,
) -> Change:
    """`new`'s change against `old`, each a list of (summed loss, labelled tokens) per row, the
    same rows in the same order. Seeded: the same scores give the same interval."""
    import numpy as np

    if len(new) != len(old) or not new:
        raise ValueError(f"paired rows differ: {len(new)} against {len(old)}")
    a = np.array([s for s, _ in new], dtype=np.float64)
    b = np.array([s for s, _ in old], dtype=np.float64)
    n = np.array([c for _, c in new], dtype=np.float64)
    if not np.array_equal(n, np.array([c for _, c in old], dtype=np.float64)):
        raise ValueError("paired rows differ in their labelled tokens")

    def change(new_sum: float, old_sum: float) -> float:
        return (new_sum - old_sum) / old_sum * 100 if old_sum else 0.0

    picks = np.random.default_rng(seed).integers(0, len(a), size=(draws, len(a)))
    # Tokens cancel in the ratio of means: both models' losses are over the same tokens.
    changes = np.where(
        b[picks].sum(axis=1) > 0,
        (a[picks].sum(axis=1) - b[picks].sum(axis=1)) / b[picks].sum(axis=1) * 100,
        0.0,
    )
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(changes, [tail, 100 - tail])
    return Change(change(a.sum(), b.sum()), float(low), float(high), len(a))
