"""Real leaked-looking secrets: the test data of Yelp's detect-secrets (private keys, cloud keys,
tokens, passwords in env, ini, yaml, md, py and php files, a diff), cloned from
`tests/data/`. Every builder (code, docs, commits, jsonl) builds from it, and not one of
its secret strings may reach a dataset file; the card counts what was left out.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.dataset_build import build_dataset
from tests.support.repos import CORPORA, commit
from tests.support.secret_plants import CORPUS_SECRETS as SECRETS

pytestmark = pytest.mark.real  # material we did not make

CORPUS = CORPORA / "detect-secrets-test-data.bundle"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    if not CORPUS.exists():
        pytest.skip(f"{CORPUS} is absent (a copy of the project without tests/data)")
    repo = tmp_path / "secrets"
    subprocess.run(["git", "clone", "-q", str(CORPUS), str(repo)], check=True)
    # The jsonl builder's material: each file of the corpus as a training record, and again
    # as a question and answer, in commits of their own on top.
    files = sorted(p for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
    records = [json.dumps({"text": p.read_text(errors="replace")}) for p in files]
    pairs = [
        json.dumps(
            {"instruction": f"What is in {p.name}?", "output": p.read_text(errors="replace")}
        )
        for p in files
    ]
    commit(repo, {"data/files.jsonl": "\n".join(records) + "\n"}, "Add the files as records")
    commit(repo, {"data/qa.jsonl": "\n".join(pairs) + "\n"}, "Add the files as questions")
    return repo


@pytest.mark.parametrize("builder", ["code", "docs", "commits", "jsonl"])
def test_no_secret_of_a_scanners_test_data_reaches_a_dataset(
    corpus: Path, tmp_path: Path, builder: str
) -> None:
    built = build_dataset(corpus, tmp_path / "datasets", "secrets", builders=(builder,))
    written = {p.name: p.read_text() for p in built.path.glob("*.jsonl")}
    for name, text in written.items():
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, (builder, name, leaked)
    secrets = built.card["secrets"]
    assert secrets["files_skipped"] + secrets["examples_dropped"] > 0, secrets
    assert secrets["found"], secrets
    if builder == "code":  # what holds no secret is still there
        assert "sweet potato casserole" in "".join(written.values())


def test_remembered_verdicts_equal_a_scan_of_the_whole_text(corpus: Path) -> None:
    """Each distinct line goes to detect-secrets once (per file type); what it finds must be
    what a scan of each whole file finds, cold and warm, for every file of the corpus."""
    from collections import Counter

    from agent.secret_forms import hidden_secrets
    from agent.secret_scanner import as_diff, scan_diff
    from agent.secrets import _LINE_BREAKS, find_secrets, redact

    files = sorted(p for p in corpus.rglob("*") if p.is_file() and ".git" not in p.parts)
    assert len(files) > 20
    # Each file also as other types: the keyword plugin reads each type its own way.
    named = [(p, str(p.relative_to(corpus))) for p in files]
    named += [(p, f"as/{p.stem}.{ext}") for p in files for ext in ("py", "yaml", "txt", "go")]
    named += [(p, f"as/{p.stem}/package-lock.json") for p in files]  # never scanned
    # Keyword-only lines in odd case (the keyword plugin ignores case; ſ folds to s).
    odd = "DB_PASSWORD = 'q'\nApi_Key: hunter2\nPaſſword = \"mango\"\nSECRET := rooster\n"
    (corpus / "odd.yaml").write_text(odd)
    named += [(corpus / "odd.yaml", f"odd.{ext}") for ext in ("yaml", "py", "go", "txt", "php")]
    for path, name in named:
        text = path.read_text(errors="replace")
        lines = _LINE_BREAKS.sub(" ", text).split("\n")
        whole = Counter(str(s.type) for s in scan_diff()(as_diff(name, lines)))
        hidden = hidden_secrets(text, lambda piece: redact(piece)[1])
        plain = redact(text)[1] + whole
        expected = +(plain + hidden)
        assert find_secrets(text, name) == expected, name
        assert find_secrets(text, name) == expected, name  # every line now remembered
        twice = text + "\n" + text
        doubled = +(plain + plain + hidden_secrets(twice, lambda p: redact(p)[1]))
        assert find_secrets(twice, name) == doubled, name
