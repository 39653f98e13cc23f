"""Two models side by side on the same metrics: the seed's MetricComparison, in a table.

Lower is better for losses and perplexity, higher for chrF; the better value of each row is
marked, so the deploy dialog answers "is the new one better?" at a glance.
"""

from __future__ import annotations

from textual.widgets import DataTable

from forge_client.format import metric

# Metric suffix → whether a higher value is better.
HIGHER_IS_BETTER = {"eval_loss": False, "perplexity": False, "chrf": True}


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
            known = [v for v in values if v is not None]
            if not known:
                continue  # a metric this eval did not compute (chrF without chat examples)
            best = (max(known) if higher else min(known)) if known else None
            cells = [
                f"{metric(v)} ✔" if v is not None and v == best and len(known) > 1 else metric(v)
                for v in values
            ]
            self.add_row(f"{suffix} ({'higher' if higher else 'lower'} is better)", *cells)
