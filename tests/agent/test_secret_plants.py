"""Secrets in every form a repository hides them (`tests.support.secret_plants`, fresh values on
each run) never reach a dataset: not its files, not its card's samples."""

from __future__ import annotations

from pathlib import Path

from agent.dataset_build import build_dataset
from tests.support.secret_plants import planted_repo


def test_every_planted_secret_is_kept_out_of_the_dataset(tmp_path: Path) -> None:
    repo, plants = planted_repo(tmp_path)
    built = build_dataset(repo, tmp_path / "datasets", "planted")
    text = "".join(p.read_text() for p in sorted(built.path.glob("*.jsonl")))
    text += (built.path / "card.json").read_text()
    leaked = {p.form: [v for v in p.values if v in text] for p in plants}
    leaked = {form: values for form, values in leaked.items() if values}
    recall = 1 - len(leaked) / len(plants)
    assert not leaked, f"recall {recall:.0%} of {len(plants)} forms; leaked: {leaked}"
    assert "def main()" in text  # the repository's own code is there
    # The card names every file and example it left out, and why (and none of the values: the
    # card is part of `text` above).
    secrets = built.card["secrets"]
    files = {x["file"]: x["why"] for x in secrets["left_out"]}
    assert len(files) == secrets["files_skipped"]
    assert "password-in-prose" in files["docs/admin.md"]
    assert "webhook-url" in files["bot/notify.py"]
    examples = [x["example"] for x in secrets["dropped"]]
    assert len(examples) == secrets["examples_dropped"]
    assert "commits: the change to db/schema.sql" in examples  # the old password's message
    # Provider tokens only Kingfisher's rules know are redacted where they stand: the release
    # notes are kept, less their values, and the card says the first pass ran.
    assert secrets["first_pass"].startswith("kingfisher ran:"), secrets["first_pass"]
    assert "* linear: [REDACTED:" in text and "* databricks: [REDACTED:" in text
    redacted = {x.get("file") or x.get("example") for x in secrets["redacted"]}
    assert any("docs/release.md" in str(r) for r in redacted), secrets["redacted"]
