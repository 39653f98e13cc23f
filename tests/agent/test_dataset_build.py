"""Datasets from a real repository built in the test, with secrets planted everywhere a person
might leave one: none of them may reach a dataset file, and the card must count them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.dataset_build import build_dataset
from agent.secrets import redact, secret_file_reason
from engine.data import load_examples
from tests.support.repos import clone_markupsafe, commit, git, needs_markupsafe

AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
OPENAI = "sk-proj-Zx81Lq0vB7nW3mK5tR9yH2cJ4dF6gP1s"
GITHUB = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
PASSWORD = "Tr0ub4dor&3xYz!q9"
BEARER = "eyJhbGciOiJIUzI1NiJ9xQ2w3e4r5t6y7u8i9o0p"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7yQ2planted\nZmFrZWtleQ==\n"
    "-----END RSA PRIVATE KEY-----"
)
PLANTED = [AWS_ID, AWS_SECRET, OPENAI, GITHUB, PASSWORD, BEARER, "MIIEowIBAAKCAQEA7yQ2planted"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "acme-api"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(
        repo,
        {
            "app/server.py": 'def handler(request):\n    """Answer a request."""\n    return 200\n',
            "README.md": "# Acme API\n\nThe Acme API serves widgets to the whole company.\n\n"
            "## Deploying\n\nRun `make deploy` from a clean checkout; it builds the image "
            f"and calls the API with `Authorization: Bearer {BEARER}` as the key.\n",
        },
        "Add the server and the README",
    )
    commit(
        repo,
        {
            ".env": f"AWS_ACCESS_KEY_ID={AWS_ID}\nAWS_SECRET_ACCESS_KEY={AWS_SECRET}\n",
            "deploy/id_rsa": PEM + "\n",
            "app/config.py": f'API_KEY = "{OPENAI}"\nGITHUB_TOKEN = "{GITHUB}"\n'
            f'db_password = "{PASSWORD}"\nAWS = "{AWS_ID}"\nTIMEOUT = 30\n',
            "docs/keys.md": f"# Keys\n\nThe signing key lives here for now:\n\n{PEM}\n",
        },
        "Add configuration for the deploy step",
    )
    commit(
        repo,
        {
            "logo.png": b"\x89PNG\r\n\x1a\n\0\0\0binary",
            "vendor/lib.py": "x = 1\n" * 10,
            "package-lock.json": "{}\n",
            "data/huge.txt": "y" * 300_000,
            "app/copy_a.py": "def same():\n    return 1\n",
            "app/copy_b.py": "def  same():\n\n    return 1\n",
        },
        "wip",
    )
    commit(
        repo,
        {
            "data/qa.jsonl": json.dumps({"instruction": "Name the API.", "output": "The Acme API."})
            + "\n{broken\n"
            + json.dumps({"instruction": "No answer"})
            + "\n"
            + json.dumps({"instruction": "Who serves widgets?", "output": "Acme does."})
            + "\n",
            "data/keys.jsonl": json.dumps(
                {"instruction": "Which key calls the API?", "output": f"Acme, key {OPENAI}"}
            )
            + "\n",
            "data/notes.jsonl": json.dumps({"text": "Widgets ship on Tuesdays."}) + "\n",
            "docs/usage.md": "# Usage\n\n## Asking\n\nSend a widget request to `/widgets` with "
            "its size.\n\n## Sizes\n\nWidgets come in sizes 1 to 10; larger sizes ship later.\n",
        },
        "Add the question and answer data",
    )
    git(repo, "checkout", "-q", "-b", "feature")
    commit(
        repo,
        {"app/feature.py": "def feature():\n    return 'new'\n"},
        "Add the feature endpoint for widgets",
    )
    git(repo, "checkout", "-q", "main")
    commit(repo, {"app/other.py": "def other():\n    return 'main'\n"}, "Add the other endpoint")
    git(repo, "merge", "-q", "--no-ff", "feature", "-m", "Merge branch feature")
    return repo


def test_planted_secrets_reach_no_dataset_file(repo: Path, tmp_path: Path) -> None:
    built = build_dataset(repo, tmp_path / "datasets", "acme-api")
    everything = "".join(p.read_text() for p in built.path.iterdir())
    for secret in PLANTED:
        assert secret not in everything, secret
    card = built.card
    assert card["secrets"]["files_skipped"] >= 3  # .env and id_rsa, and their diff
    found = card["secrets"]["found"]
    for kind in (
        "openai-key",
        "github-token",
        "aws-access-key",
        "private-key",
        "bearer-token",
        "secret-assignment",
    ):
        assert found.get(kind, 0) >= 1, (kind, found)
    # A file whose secrets are each in one place (config.py, the README with a bearer token, the
    # docs page with a key block) is kept with them redacted where they stood, and named.
    assert "TIMEOUT = 30" in everything and "Acme API serves widgets" in everything
    assert '"[REDACTED:' in everything and "[REDACTED:private-key]" in everything
    redacted = {r["file"] for r in card["secrets"]["redacted"] if "file" in r}
    assert {"app/config.py", "README.md", "docs/keys.md"} <= redacted, card["secrets"]
    assert "file holds a secret" not in card["skipped"], card["skipped"]
    assert "def handler(request)" in everything and "Widgets ship on Tuesdays." in everything


def test_card_counts_builders_and_skips(repo: Path, tmp_path: Path) -> None:
    built = build_dataset(repo, tmp_path / "datasets", "acme-api")
    card = built.card
    assert built.path == tmp_path / "datasets" / "acme-api" / "v1"
    assert sorted(p.name for p in built.path.iterdir()) == [
        "card.json",
        "code.jsonl",
        "commits.jsonl",
        "docs.jsonl",
        "jsonl-instruction.jsonl",
        "jsonl-text.jsonl",
    ]
    assert json.loads((built.path / "card.json").read_text()) == card
    assert card["per_builder"]["jsonl"] == 4  # keys.jsonl's row too, its key redacted
    assert card["skipped"]["jsonl: not valid JSON"] == 1
    assert card["skipped"]["jsonl: missing or empty field 'output'"] == 1
    assert card["per_builder"]["code"] >= 4
    assert card["per_builder"]["docs"] >= 2
    assert card["per_builder"]["commits"] >= 3
    skipped = card["skipped"]
    for reason in (
        "binary",
        "vendored",
        "generated",
        "oversized",
        "trivial commit message",
        "merge commit",
        "near-duplicate",
        "credential file",
    ):
        assert skipped.get(reason, 0) >= 1, (reason, skipped)
    lines = sum(1 for f in built.path.glob("*.jsonl") for _ in f.open())
    assert card["examples"] == lines
    assert card["approx_tokens"] > 0
    # The engine takes it as it is.
    examples, _ = load_examples(built.path)
    assert len(examples) == card["examples"]
    commits = [
        e
        for e in examples
        if e.format == "chat"
        and e.record["messages"][0]["content"].startswith("Write the commit message")
    ]
    messages = {e.record["messages"][1]["content"] for e in commits}
    assert "Add the feature endpoint for widgets" in messages and "wip" not in messages
    assert built.card["version"] == 1
    again = build_dataset(repo, tmp_path / "datasets", "acme-api")
    assert again.card["version"] == 2 and not list(
        (tmp_path / "datasets" / "acme-api").glob("*.partial")
    )


def test_incremental_since_a_commit(repo: Path, tmp_path: Path) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    built = build_dataset(repo, tmp_path / "d", "acme-api", since=first, replay_fraction=0.0)
    texts = "".join(p.read_text() for p in built.path.glob("*.jsonl"))
    assert "def handler(request)" not in texts  # unchanged since `first`, and no replay
    assert built.card["replayed_files"] == 0
    everything = build_dataset(repo, tmp_path / "d", "acme-api", since=first, replay_fraction=1.0)
    assert everything.card["replayed_files"] == 2  # README.md and app/server.py
    assert "def handler(request)" in "".join(p.read_text() for p in everything.path.glob("*.jsonl"))
    assert "def other()" in texts
    assert "Add the server and the README" not in texts


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"key: {AWS_ID}", "aws-access-key"),
        (f"token {GITHUB}", "github-token"),
        ("slack xoxb-123456789012-abcdefghij", "slack-token"),
        ("AIza" + "Sy" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "google-api-key"),
        ("postgres://admin:hunter2secret@db.internal:5432/app", "url-credentials"),
        (PEM, "private-key"),
        (f'client_secret = "{PASSWORD}"', "secret-assignment"),
        ("DB_PASSWORD=Xk9#mQ2$vL7pR4wz", "env-credential"),
        ("export DB_PASS=hunter2hunter2", "env-credential"),
    ],
)
def test_each_token_kind_is_redacted(text: str, kind: str) -> None:
    clean, found = redact(text)
    assert found[kind] == 1, found
    assert f"[REDACTED:{kind}]" in clean


def test_low_entropy_and_ordinary_code_is_kept() -> None:
    for text in [
        'password = "changeme"',
        "token_count = compute_tokens(text)",
        "def get_secret_name(self):",
        "max_tokens = 4096",
        "api_key = settings.openai_api_key",
    ]:
        clean, found = redact(text)
        assert clean == text and not found, (text, found)
    assert secret_file_reason("config/.env.production")
    assert secret_file_reason("keys/server.pem")
    assert secret_file_reason("app/settings.py") is None
    assert secret_file_reason("agent/secrets.py") is None  # code about secrets is code
    assert secret_file_reason("deploy/secrets.yaml")


@needs_markupsafe
def test_a_real_repositorys_code_examples_are_its_own_source_not_its_boilerplate(
    tmp_path: Path,
) -> None:
    repo = clone_markupsafe(tmp_path / "markupsafe")
    built = build_dataset(repo, tmp_path / "datasets", "markupsafe", builders=("code", "docs"))
    heads = {
        json.loads(line)["text"].split("\n", 1)[0]
        for line in (built.path / "code.jsonl").read_text().splitlines()
    }
    for left in ("# .editorconfig", "# .gitignore", "# docs/make.bat", "# LICENSE.txt"):
        assert left not in heads, heads
    assert not any(h.startswith(("# .github/", "# .devcontainer/")) for h in heads), heads
    assert {"# src/markupsafe/__init__.py", "# tests/test_escape.py"} <= heads, heads
    skipped = built.card["skipped"]["boilerplate (CI, editor and git settings, licence)"]
    assert skipped >= 10, built.card["skipped"]
