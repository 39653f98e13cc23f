"""Missions and dataset cards as a person reads them: why a mission was proposed, its dataset,
its plan, the eval's verdict and how far its chain has gone, in Markdown.

One text for the TUI (mission detail, dataset card) and `forge missions show`, built from the
typed records (`forge_api.mission_data`), so the two never disagree and neither prints raw JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from forge_api.mission_data import DatasetCard, EvalResults, MissionData
from forge_api.schema import Mission
from forge_client.format import ago, clock, duration, size

SAMPLES = 3
TUI_HINTS = {
    "proposed": "**Press `a` to approve (its training starts), `e` to approve with changes,"
    " `r` to reject.**",
    "failed": "**Press `t` to retry from the step that failed, `x` to dismiss it.**",
}
"""What to do next, in the TUI's keys (`forge missions show` says it in commands: CLI_HINTS)."""

CLI_HINTS = {
    "proposed": "**Approve with `forge missions approve {id}` (its training starts; `--set"
    " KEY=VALUE` changes the plan), or reject with `forge missions reject {id}`.**",
    "failed": "**Retry from the step that failed with `forge missions retry {id}`, or put it"
    " away with `forge missions dismiss {id}`.**",
}


LEFT_OUT_SHOWN = 10
"""Files and examples left out for a secret named on a mission's card (all are in card.json)."""


def stage_text(m: Mission) -> str:
    """The mission's stage, with the step that failed (or was cancelled by a person)."""
    if m.stage != "failed":
        return m.stage
    # The failure names the job and how it ended: "train job job-… cancelled: …".
    how = "cancelled" if re.match(r"\S+ job \S+ cancelled\b", m.failure or "") else "failed"
    return f"{how} at {m.failed_step}"


def result_rows(results: EvalResults) -> list[list[str]]:
    """Per model: name, held-out loss, perplexity, change in loss against the base."""
    return [
        [
            name,
            f"{row.loss:.4f}",
            "-" if row.perplexity is None else f"{row.perplexity:.2f}",
            "" if row.change_pct is None else f"{row.change_pct:+.1f} %",
        ]
        for name, row in results.models.items()
    ]


def set_rows(results: EvalResults) -> list[list[str]]:
    """Per held-out set: its name, then each model's loss with its change against the base."""
    rows = []
    for name, scored in results.sets.items():
        cells = [name.replace("_", " ")]
        for model in ("base", "current", "new"):
            score = scored.models.get(model)
            if score is None:
                cells.append("-")
            elif score.change_pct is None:
                cells.append(f"{score.loss:.4f}")
            else:
                cells.append(f"{score.loss:.4f} ({score.change_pct:+.1f} %)")
        rows.append(cells)
    return rows


def _results(results: EvalResults | None) -> list[str]:
    if results is None or not results.models:
        return []
    lines = ["### Results (held-out)", "", "| model | loss | perplexity | change |", "|-|-|-|-|"]
    lines += ["| " + " | ".join(row) + " |" for row in result_rows(results)]
    if results.sets:
        lines += ["", "| held-out set | base | current | new |", "|-|-|-|-|"]
        lines += ["| " + " | ".join(row) + " |" for row in set_rows(results)]
    return [*lines, "", results.summary, ""]


def card_lines(card: DatasetCard) -> list[str]:
    """A dataset's card for a person: size, what each builder kept, what was left out and why,
    and where it came from."""
    tokens = (
        f"about {card.approx_tokens:,} tokens in the dataset"
        if card.approx_tokens
        else "tokens not counted"
    )
    version = f", version {card.version}" if card.version else ""
    built = f", built {ago(card.built_at)}" if card.built_at else ""
    lines = [f"{card.examples:,} examples, {tokens}{version}{built}"]
    if card.source:
        since = f" since {card.since[:12]}" if card.since else ""
        lines.append(f"- from {card.source} at commit {(card.commit or '-')[:12]}{since}")
    if card.imported_from:
        lines.append(f"- imported from {card.imported_from} ({size(card.bytes)})")
    lines += [f"- {builder}: {count:,}" for builder, count in card.kept_per_builder.items()]
    skipped = ", ".join(f"{count:,} {why}" for why, count in card.skipped.items() if count)
    if skipped:
        lines.append(f"- left out: {skipped}")
    secrets = card.secrets
    if secrets and (secrets.files_skipped or secrets.examples_dropped):
        kinds = ", ".join(f"{count} {kind}" for kind, count in secrets.found.items())
        lines.append(
            f"- secrets: {secrets.files_skipped} files and {secrets.examples_dropped} examples"
            f" left out for holding one ({kinds or 'kinds not recorded'})"
        )
        named = [f"`{x.get('file')}`: {x.get('why')}" for x in secrets.left_out]
        named += [f"{x.get('example')}: {x.get('why')}" for x in secrets.dropped]
        lines += [f"  - {line}" for line in named[:LEFT_OUT_SHOWN]]
        if len(named) > LEFT_OUT_SHOWN:
            lines.append(f"  - and {len(named) - LEFT_OUT_SHOWN} more (the dataset's card.json)")
    if secrets and secrets.values_redacted:
        lines.append(
            f"- secrets redacted in place: {secrets.values_redacted} values in"
            f" {len(secrets.redacted)} files and examples kept"
        )
    return lines


def _gate(data: MissionData) -> list[str]:
    """What the adapter must show to be deployed: said before approval, as after."""
    if data.gate is None:
        return []
    return [
        "",
        f"**Deployed only if** the new adapter lowers the held-out loss by more than"
        f" {data.gate.min_gain_pct:g} % against the source's current adapter (else the base),"
        " with the 95 % interval of that change over the held-out rows all gain, and is no"
        f" more than {data.gate.max_regression_pct:g} % worse on old material or general text"
        " than the base or the current adapter.",
    ]


def _progress(data: MissionData) -> list[str]:
    steps = [
        ("held for quiet hours until", clock(data.held_until) if data.held_until else None),
        ("train job", f"`{data.train_job}`" if data.train_job else None),
        ("eval job", f"`{data.eval_job}`" if data.eval_job else None),
        # A sentence with its own `code` in it: never put inside another code span.
        ("deploy", data.deploy),
        ("deploy job", f"`{data.deploy_job}`" if data.deploy_job else None),
        ("deployed as", f"`{data.deployed}`" if data.deployed else None),
    ]
    shown = [f"- {label}: {value}" for label, value in steps if value]
    return ["", "### Progress", *shown] if shown else []


def _timing(data: MissionData) -> list[str]:
    """The ETA from approval to done, and how the plan divides its time budget."""
    if data.measuring:
        return [
            "### Estimated time: measuring this machine",
            "A calibration job measures this base model here first (its log is on the Jobs"
            " screen); the ETA follows.",
        ]
    lines = [f"### Estimated time: {duration(data.eta_s)}"]
    t = data.timing
    if t is not None and t.eta_s is not None:
        lines.append(
            f"- training about {duration(t.train_s)}, evaluation about {duration(t.eval_s)}"
            f" ({t.eval_rows} held-out rows, {t.generations} answers of up to"
            f" {t.max_new_tokens} tokens per model)"
            + (f", deploy about {duration(t.deploy_s)}" if t.deploy_s else "")
        )
    budget = data.plan.params.get("max_minutes") if data.plan else None
    if budget:
        lines.append(f"- within the time budget of {budget:g} min, approval to done")
    return lines


def mission_markdown(
    m: Mission, samples: list[dict[str, Any]] | None = None, hints: dict[str, str] = TUI_HINTS
) -> str:
    """A mission's detail as Markdown: what to do next (`hints`, in the TUI's keys or the CLI's
    commands), trigger, dataset card and samples, plan, ETA, rationale, results and progress;
    `samples` are examples of its dataset, where the caller has them."""
    data = m.data
    trigger = data.trigger
    plan = data.plan.params if data.plan else {}
    lines = [
        hints.get(m.stage, "").replace("{id}", m.id),
        f"## {m.title}",
        f"`{m.id}` · **{stage_text(m)}** · proposed {ago(m.created_at)}"
        + (f" · reason: {m.reason}" if m.reason else ""),
        "",
        *([f"**Failed:** {m.failure}", ""] if m.failure else []),
        *_results(data.results),
        "### Why now",
    ]
    if trigger is not None:
        since = f"`{trigger.since[:12]}`" if trigger.since else "the start"
        lines += [
            trigger.why or "-",
            f"- {trigger.commits:,} commits, {trigger.files:,} files, about"
            f" {trigger.approx_tokens:,} tokens of new material since {since}",
        ]
    else:
        lines.append("-")
    lines += [
        "",
        "### Rationale",
        data.rationale or "-",
        *_gate(data),
        "",
        *_timing(data),
        "",
        f"### Dataset `{data.dataset_id or '-'}`",
        *(card_lines(data.card) if data.card else []),
    ]
    if samples:
        lines += ["", "### Sample examples"]
        for ex in samples[:SAMPLES]:
            lines += ["```json", json.dumps(ex, ensure_ascii=False)[:600], "```"]
    lines += ["", "### Hyperparameters"]
    if data.base_model:
        lines.append(f"- base model: `{data.base_model}`")
    lines += [f"- {k}: `{v}`" for k, v in plan.items() if k not in ("dataset", "base_model")]
    if data.plan and data.plan.changed:
        lines.append(f"- changed before approval: {', '.join(data.plan.changed)}")
    if data.continues or data.fresh_start:
        lines.append(f"- {data.continues or data.fresh_start}")
    lines += _progress(data)
    return "\n".join(lines)
