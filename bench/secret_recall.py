"""Secret filtering as numbers: recall, what it costs in real material, and its speed.

* recall per form on `tests.support.secret_plants` (12 forms: in files, a diff inside a key,
  commit messages, a notebook), fresh random values each round;
* recall on detect-secrets' own test data (`tests/data`): its secret values absent from the
  dataset built from it;
* the false-positive cost: markupsafe's examples dropped for holding a secret, of all it made,
  and the values redacted in place in what was kept;
* speed: a cold first build of markupsafe's dataset against reading the same material with git
  (`git log -p` of its history + `git ls-files | xargs cat`), side by side, and the ratio.

    .venv/bin/python -m bench.secret_recall [--rounds 5]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from agent.dataset_build import build_dataset
from agent.secrets import forget_verdicts
from tests.support.repos import CORPORA, clone_markupsafe
from tests.support.secret_plants import CORPUS_SECRETS, planted_repo


def dataset_text(path: Path) -> str:
    return (
        "".join(p.read_text() for p in sorted(path.glob("*.jsonl")))
        + (path / "card.json").read_text()
    )


def plant_recall(rounds: int, root: Path) -> tuple[Counter[str], Counter[str]]:
    """(plants per form, plants leaked per form) over `rounds` fresh repositories."""
    planted: Counter[str] = Counter()
    leaked: Counter[str] = Counter()
    for n in range(rounds):
        repo, plants = planted_repo(root / f"round{n}")
        text = dataset_text(build_dataset(repo, root / f"round{n}" / "ds", "planted").path)
        for plant in plants:
            planted[plant.form] += 1
            leaked[plant.form] += any(v in text for v in plant.values)
    return planted, leaked


def clone(bundle: Path, into: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(bundle), str(into)], check=True)
    return into


def git_read_seconds(repo: Path) -> float:
    """Reading what a build reads, with git: the whole history as patches, and every file."""
    began = time.perf_counter()
    subprocess.run(["git", "-C", str(repo), "log", "-p"], check=True, capture_output=True)
    subprocess.run(
        f"git -C {repo} ls-files -z | (cd {repo} && xargs -0 cat) > /dev/null",
        shell=True,
        check=True,
    )
    return time.perf_counter() - began


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="secret-recall-") as tmp:
        root = Path(tmp)
        planted, leaked = plant_recall(args.rounds, root / "plants")
        print("| form | planted | kept out | recall |\n|---|---|---|---|")
        for form in planted:
            kept = planted[form] - leaked[form]
            print(f"| {form} | {planted[form]} | {kept} | {kept / planted[form]:.0%} |")
        total = sum(planted.values())
        print(
            f"| all plants | {total} | {total - sum(leaked.values())} |"
            f" {(total - sum(leaked.values())) / total:.0%} |"
        )

        corpus = clone(CORPORA / "detect-secrets-test-data.bundle", root / "corpus")
        text = dataset_text(build_dataset(corpus, root / "corpus-ds", "corpus").path)
        found = [s for s in CORPUS_SECRETS if s in text]
        kept = len(CORPUS_SECRETS) - len(found)
        print(
            f"| detect-secrets' test data | {len(CORPUS_SECRETS)} | {kept} |"
            f" {kept / len(CORPUS_SECRETS):.0%} |"
        )

        repo = clone_markupsafe(root / "markupsafe")
        baseline = min(git_read_seconds(repo) for _ in range(3))
        forget_verdicts()  # a first build: no verdict remembered
        began = time.perf_counter()
        built = build_dataset(repo, root / "markupsafe-ds", "markupsafe")
        ours = time.perf_counter() - began
        card = built.card
        dropped = card["secrets"]["examples_dropped"]
        made = card["examples"] + dropped
        secrets = card["secrets"]
        print(
            f"\nmarkupsafe: {dropped} of {made} examples dropped for a secret"
            f" ({dropped / made:.1%}), {secrets['files_skipped']} files left out;"
            f" {secrets['values_redacted']} values redacted in place in"
            f" {len(secrets['redacted'])} files and examples kept;"
            f" first pass: {secrets['first_pass']}"
        )
        print(
            f"first build {ours:.2f} s; git log -p + ls-files | xargs cat {baseline:.2f} s;"
            f" ratio {ours / baseline:.1f}x"
        )


if __name__ == "__main__":
    main()
