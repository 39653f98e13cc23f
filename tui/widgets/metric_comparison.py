"""Two models side by side on the same metrics: the seed's MetricComparison, in a table.

Lower is better for losses and perplexity, higher for chrF; the better value of each row is
marked, so the deploy dialog answers "is the new one better?" at a glance, and only where it is
better by more than the noise of a small eval: four answers with the same chrF, or a 1 % loss
change, mark nothing.
"""

from __future__ import annotations

from textual.widgets import DataTable

from forge_client.format import metric

# Metric suffix → whether a higher value is better.
HIGHER_IS_BETTER = {"eval_loss": False, "perplexity": False, "chrf": True}
RELATIVE_MARGIN = {"eval_loss": 0.02, "perplexity": 0.02}
"""Lower by more than this share of the runner-up to count as better (agent.min_gain_pct's
default, 2 %)."""
CHRF_MARGIN = 1.0
"""chrF points (0-100) a value must lead the runner-up by to count as better."""


def best_index(suffix: str, values: list[float | None]) -> int | None:
    """The column whose value is better than every other by the margin, or None."""
    known = sorted(
        ((v, i) for i, v in enumerate(values) if v is not None),
        reverse=HIGHER_IS_BETTER[suffix],
    )
    if len(known) < 2:
        return None
    (best, at), (runner_up, _) = known[0], known[1]
    if suffix in RELATIVE_MARGIN:
        ahead = runner_up - best > RELATIVE_MARGIN[suffix] * abs(runner_up)
    else:
        ahead = best - runner_up > CHRF_MARGIN
    return at if ahead else None


class MetricComparison(DataTable[str]):
    """Rows are metrics; columns are the models compared (the first is the candidate)."""

    def show(self, columns: dict[str, dict[str, float]]) -> None:
        self.clear(columns=True)
        self.add_column("metric")
        names = list(columns)
        for name in names:
            self.add_column(name)
        for suffix, higher in HIGHER_IS_BETTER.items():
            values = [columns[n].get(suffix) for n in names]
            if all(v is None for v in values):
                continue  # a metric this eval did not compute (chrF without chat examples)
            best = best_index(suffix, values)
            cells = [f"{metric(v)} ✔" if i == best else metric(v) for i, v in enumerate(values)]
            self.add_row(f"{suffix} ({'higher' if higher else 'lower'} is better)", *cells)
