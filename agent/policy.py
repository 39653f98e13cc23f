"""When a source has grown enough to be worth a training run, and what that run would be.

Pure decisions over counts from git: no daemon state here, so the rules are easy to read and
to test. The rationale is a template; an LLM advisor may later write a better one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.mission_time import MIN_STEPS
from agent.repo_files import MAX_BYTES, tracked_blobs
from agent.safe_git import changed_paths, has_commit, open_repo
from forge_api.names import MISSION_MAX_SEQ_LEN


@dataclass(frozen=True)
class Material:
    """What is new in a repository since a commit (or in all of it, when never trained)."""

    head: str
    since: str | None
    commits: int
    files: int
    approx_tokens: int
    rewritten: str | None = None
    """The last trained commit, where the repository no longer holds it (a force-push): the
    material is then counted from the start."""


def pending_material(repo_path: Path, since: str | None) -> Material:
    repo = open_repo(repo_path)
    if not repo.head.is_valid():  # a repository with no commit yet
        return Material("", since, 0, 0, 0)
    head = repo.head.commit
    if since and not has_commit(repo, since):  # history rewritten: all of it is new
        return replace(pending_material(repo_path, None), rewritten=since)
    rev = f"{since}..{head.hexsha}" if since else head.hexsha
    commits = sum(1 for c in repo.iter_commits(rev) if len(c.parents) <= 1)
    if since:
        names = changed_paths(repo, since, head.hexsha)
    else:
        names = {b.path for b in tracked_blobs(head.tree)}
    size = sum(b.size for b in tracked_blobs(head.tree) if b.path in names and b.size <= MAX_BYTES)
    return Material(head.hexsha, since, commits, len(names), size // 4)


def decide(material: Material, min_commits: int, min_tokens: int) -> tuple[bool, str]:
    if material.commits < min_commits:
        return False, f"{material.commits} new commits, fewer than {min_commits}"
    if material.approx_tokens < min_tokens:
        return False, f"about {material.approx_tokens} new tokens, fewer than {min_tokens}"
    return True, (
        f"{material.commits} new commits and about {material.approx_tokens:,} tokens of new "
        f"material, past the thresholds ({min_commits} commits, {min_tokens:,} tokens)"
    )


GENERAL_REPLAY = 0.1
"""A mission's share of training rows made of the base's own answers to general prompts.
Measured (`python -m bench.continual --steps 12 --seq 256`, SmolLM2 on markupsafe's last 40
commits, continuing the first mission's adapter): without it general text came out 0.2 % worse
than the base; with 0.1 it was 2.0 % better, for the same gain on new material (-7.3 % against
-7.4 %) and on old material (-10.1 % against -9.8 %)."""


def training_plan(
    base_model: str,
    dataset: Path,
    examples: int,
    max_seq_len: int = MISSION_MAX_SEQ_LEN,
    max_minutes: float | None = None,
) -> dict[str, Any]:
    """Train params for a mission: one epoch of LoRA, small enough to run on any machine, and at
    least MIN_STEPS steps so a handful of new files still moves the adapter (fewer where the
    budget cannot pay for them: `forged.mission_plan.timed`). `max_minutes` is the whole
    mission's wall-time budget; the train job gets its share at approval."""
    params: dict[str, Any] = {
        "base_model": base_model,
        "dataset": str(dataset),
        "method": "lora",
        "epochs": 1.0,
        "min_steps": MIN_STEPS,
        "max_seq_len": max_seq_len,
        "skip_bad_examples": True,
        "general_replay": GENERAL_REPLAY,
    }
    if max_minutes:
        params["max_minutes"] = max_minutes
    return {"kind": "train", "params": params, "examples": examples}


def rationale(
    source: str,
    material: Material,
    card: dict[str, Any],
    eta: float | None,
    note: str = "",
    measuring: bool = False,
    budget_min: float | None = None,
) -> str:
    # What the dataset holds, by builder: these add up to its examples (what the builders made
    # before near-duplicates and secrets were taken out is in the card's `per_builder`).
    builders = ", ".join(f"{n} {k}" for k, n in card.get("kept_per_builder", {}).items())
    when = (
        f"about {eta / 60:.0f} min on this machine"
        if eta and eta >= 60
        else f"about {eta:.0f} s on this machine"
        if eta
        else "measuring this machine first (a calibration job); the ETA follows"
        if measuring
        else "no training throughput measured on this machine yet"
    )
    if note:
        when += f" ({note})"
    since = f"since {material.since[:10]}" if material.since else "(never trained before)"
    secrets = card.get("secrets", {})
    return (
        f"{source} has {material.commits} new commits {since}. The dataset holds "
        f"{card.get('examples', 0)} examples ({builders}), about {card.get('approx_tokens', 0):,} "
        f"tokens; {secrets.get('files_skipped', 0)} files and "
        f"{secrets.get('examples_dropped', 0)} examples holding secrets were left out. "
        f"From approval to done (training, evaluation, deploy)"
        + (f", within the proposed {budget_min:g}-min budget" if budget_min else "")
        + f": {when}."
    )


MIN_GAIN_PCT = 2.0
"""`agent.min_gain_pct`'s default: a held-out loss change smaller than this is noise. Tried as a
new user would, a -1 % change with the same answers and the same chrF was called a win."""


Interval = tuple[float, float]
"""A change's 95 % paired-bootstrap interval (%), low and high (`engine.loss_interval`)."""


def interval(scores: dict[str, dict[str, float]], rival: str) -> Interval | None:
    """The new adapter's interval against `rival` (`base`, `previous`), where the eval made one."""
    new = scores.get("adapter", {})
    low, high = new.get(f"change_low_pct_vs_{rival}"), new.get(f"change_high_pct_vs_{rival}")
    return (low, high) if low is not None and high is not None else None


def measurable(change_pct: float, min_gain_pct: float, noise: Interval | None) -> bool:
    """A change is measured when it is larger than `min_gain_pct` and its interval, where
    there is one, does not hold zero."""
    return abs(change_pct) > min_gain_pct and (noise is None or noise[0] > 0 or noise[1] < 0)


def interval_text(noise: Interval | None) -> str:
    """`, 95 % interval -6.0 to -2.2 %`, or nothing where the eval made no interval."""
    return f", 95 % interval {noise[0]:+.1f} to {noise[1]:+.1f} %" if noise else ""


def gain_text(
    change_pct: float,
    against: str,
    min_gain_pct: float = MIN_GAIN_PCT,
    noise: Interval | None = None,
) -> str:
    """A loss change in words: a measurable one as a signed percentage, else 'no measurable
    change' with the figure; each with its interval where there is one."""
    spread = interval_text(noise)
    if measurable(change_pct, min_gain_pct, noise):
        return f"{change_pct:+.1f} % loss against {against}{spread}"
    return f"no measurable change against {against} ({change_pct:+.1f} %{spread})"


def compare_scores(
    scores: dict[str, dict[str, float]], min_gain_pct: float = MIN_GAIN_PCT
) -> dict[str, Any]:
    """An eval's verdict for a person: held-out loss and perplexity of the base, the deployed
    (or previous) adapter and the new one, each model's change in loss against the base, and
    a one-line summary of the new adapter against both (a change within `min_gain_pct` reads
    as no measurable change)."""
    labels = {"base": "base", "previous": "deployed", "adapter": "new adapter"}
    base = scores["base"]["eval_loss"]

    def change(loss: float, against: float) -> float:
        return round((loss - against) / against * 100, 2) if against else 0.0

    models: dict[str, dict[str, Any]] = {}
    for who, label in labels.items():
        if who in scores:
            loss = scores[who]["eval_loss"]
            models[label] = {
                "loss": loss,
                "perplexity": scores[who].get("perplexity"),
                "change_pct": None if who == "base" else change(loss, base),
            }
    parts = []
    if "adapter" in scores:
        new = scores["adapter"]["eval_loss"]
        noise = interval(scores, "base")
        parts.append(gain_text(change(new, base), "the base", min_gain_pct, noise))
        if "previous" in scores:
            against = change(new, scores["previous"]["eval_loss"])
            noise = interval(scores, "previous")
            parts.append(gain_text(against, "the current adapter", min_gain_pct, noise))
    summary = f"new adapter: {', '.join(parts)}" if parts else "no adapter was evaluated"
    return {"models": models, "sets": set_scores(scores), "summary": summary}


SETS = {
    "new_material": "eval_loss",
    "old_material": "eval_loss_old_material",
    "general": "eval_loss_general",
}
"""Each held-out set an eval scores, and its score's name in the eval's report."""
SET_MODELS = {"base": "base", "previous": "current", "adapter": "new"}


def set_scores(scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The 3 × 3 table: for each held-out set an eval scored, each model's loss and its change
    against the base (%)."""
    table: dict[str, Any] = {}
    for name, key in SETS.items():
        base = scores.get("base", {}).get(key)
        if base is None:
            continue
        models: dict[str, Any] = {}
        for who, label in SET_MODELS.items():
            loss = scores.get(who, {}).get(key)
            if loss is not None:
                change = None if who == "base" else round((loss - base) / base * 100, 2)
                models[label] = {"loss": loss, "change_pct": change}
        table[name] = {"models": models}
    return table


MAX_REGRESSION_PCT = 2.0
"""`agent.max_regression_pct`'s default: how much worse than the current adapter and the base
the new one may be on old material and general text before a mission will not deploy it."""


def regression(
    scores: dict[str, dict[str, float]], limit_pct: float = MAX_REGRESSION_PCT
) -> str | None:
    """Why the new adapter costs too much on what it should not forget (old material, general
    text, against the base and the current adapter), or None."""
    for name in ("old_material", "general"):
        key = SETS[name]
        new = scores.get("adapter", {}).get(key)
        for who, label in (("base", "the base"), ("previous", "the current adapter")):
            ref = scores.get(who, {}).get(key)
            if new is None or not ref:
                continue
            change = (new - ref) / ref * 100
            if change > limit_pct:
                return (
                    f"{name.replace('_', ' ')} {change:+.1f} % against {label},"
                    f" the limit is {limit_pct:g} % (agent.max_regression_pct)"
                )
    return None
