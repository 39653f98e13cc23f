"""Builders on real material: every example fits the model's `max_seq_len` in its own tokens,
the root commit reads as additions, globs apply to commit diffs, Markdown fences and
reStructuredText sections are read as a person wrote them, bots' commits are left out, and
ordinary code is not taken for a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.builders import doc_sections
from agent.dataset_build import build_dataset
from agent.repo_files import FileText
from agent.secrets import redact
from agent.token_fit import Fit, chunk_lines, load_counter
from engine.data import fitting, load_examples
from tests.support.repos import clone_markupsafe, commit, git, needs_markupsafe


def every_example_fits(dataset: Path, tokenizer_dir: Path, max_seq_len: int) -> int:
    """How many examples the engine takes from `dataset`; fails on any it would skip."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples, report = load_examples(dataset)
    kept = fitting(examples, tokenizer, max_seq_len, report, skip_bad=True)
    assert not report.skipped, report.skipped_at
    return len(kept)


@needs_markupsafe
def test_markupsafe_dataset_fits_and_reads_well(tiny_model: Path, tmp_path: Path) -> None:
    repo = clone_markupsafe(tmp_path / "markupsafe")
    fit = Fit(load_counter(tiny_model), 256)
    built = build_dataset(repo, tmp_path / "datasets", "markupsafe", fit=fit)
    card = built.card
    assert every_example_fits(built.path, tiny_model, 256) == card["examples"]

    # The card's count is the model tokenizer's, not an estimate.
    assert card["tokenizer"] == "tiny-llama's tokenizer"
    # Bots and version bumps are counted, not trained on.
    skipped = card["skipped"]
    assert skipped["commit by a bot"] >= 100, skipped
    assert skipped["version bump"] >= 10 and skipped["dependency or lock files only"] >= 1
    commits = [json.loads(line) for line in (built.path / "commits.jsonl").open()]
    messages = [c["messages"][1]["content"] for c in commits]
    assert not any(m.lower().startswith(("bump ", "release version")) for m in messages)
    # The root commit adds its files.
    (root,) = [c for c in commits if c["messages"][1]["content"].startswith("Added initial")]
    assert root["messages"][0]["content"].startswith(
        "Write the commit message for this change:\n\n--- /dev/null\n+++ .gitignore\n"
    )
    assert "more files" in root["messages"][0]["content"]  # 8 files do not fit in 256 tokens
    # reStructuredText pages become questions, by their section titles.
    docs = [json.loads(line) for line in (built.path / "docs.jsonl").open()]
    assert any("docs/escaping.rst" in d["messages"][0]["content"] for d in docs)
    assert any("CHANGES.rst" in d["messages"][0]["content"] for d in docs)
    # The author's e-mail in setup.py is an address, not a secret.
    assert "secret-assignment" not in card["secrets"]["found"], card["secrets"]
    # A few examples of each kind are on the card.
    assert set(card["samples"]) == set(card["kept_per_builder"])


@needs_markupsafe
def test_root_commit_is_additions_and_globs_apply_to_diffs(tmp_path: Path) -> None:
    repo = clone_markupsafe(tmp_path / "markupsafe")
    built = build_dataset(
        repo, tmp_path / "d", "ms", builders=("commits",), exclude=["tests/*", "*.rst"]
    )
    text = (built.path / "commits.jsonl").read_text()
    assert "+++ tests/" not in text and "+++ CHANGES.rst" not in text
    assert built.card["skipped"]["diff of a file excluded by the source's globs"] > 50
    (root,) = [
        json.loads(line)["messages"][0]["content"]
        for line in text.splitlines()
        if "Added initial commit from Jinja2" in line
    ]
    assert "--- /dev/null\n+++ markupsafe/__init__.py\n" in root
    assert "\n+Copyright (c) 2010 by Armin Ronacher." in root  # added lines, not removed ones


def test_long_material_is_cut_to_fit(tiny_model: Path, tmp_path: Path) -> None:
    repo = tmp_path / "long"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    body = "\n".join(f"Paragraph {i}: the service keeps state per tenant." for i in range(80))
    commit(
        repo,
        {
            "big.py": "\n".join(f"def f{i}(x):\n    return x * {i}\n" for i in range(300)),
            "minified.js": "var a=" + "1+" * 3000 + "1;\n",
            "GUIDE.md": f"# Guide\n\n{body}\n\n```sh\n# not a heading\nmake\n```\n",
        },
        "Add the big module, the minified bundle and the guide",
    )
    commit(
        repo,
        {f"pkg/mod{i}.py": f"VALUE_{i} = {i}\n" * 60 for i in range(12)},
        "Add twelve modules with their values",
    )
    fit = Fit(load_counter(tiny_model), 128)
    built = build_dataset(repo, tmp_path / "d", "long", fit=fit)
    assert every_example_fits(built.path, tiny_model, 128) == built.card["examples"]
    code = [json.loads(line)["text"] for line in (built.path / "code.jsonl").open()]
    assert all(chunk.startswith(("# big.py\n", "# minified.js\n", "# pkg/")) for chunk in code)
    assert sum(chunk.startswith("# big.py\n") for chunk in code) > 10
    commits = (built.path / "commits.jsonl").read_text()
    assert "more lines of this diff cut" in commits or "more files changed" in commits
    docs = [json.loads(line) for line in (built.path / "docs.jsonl").open()]
    assert len(docs) > 1 and all("(part " in d["messages"][0]["content"] for d in docs)
    assert built.card["skipped"]["commit diff cut to fit max_seq_len"] >= 1


def test_fenced_hash_lines_are_not_headings() -> None:
    text = "# Install\n\nRun this:\n\n```sh\n# a comment in a shell block\npip install x\n```\n"
    sections, _ = doc_sections([FileText("README.md", text)])
    assert [heading for _, heading, _ in sections] == ["Install"]
    assert "# a comment in a shell block" in sections[0][2]


def test_restructuredtext_titles() -> None:
    text = (
        "=========\nMarkupSafe\n=========\n\nIntro text that is long enough to keep.\n\n"
        "Escaping\n--------\n\nUse ``escape`` to escape text for HTML output safely.\n\n"
        "    Indented\n    --------\n\nnot a title because it is indented in a block.\n"
    )
    sections, _ = doc_sections([FileText("docs/index.rst", text)])
    assert [heading for _, heading, _ in sections] == ["MarkupSafe", "Escaping"]


def test_chunks_fit_exactly_with_a_real_tokenizer(tiny_model: Path) -> None:
    counter = load_counter(tiny_model)
    assert counter.exact
    text = "".join(f"line {i}: {'x' * (i % 50)}\n" for i in range(400)) + "y" * 5000 + "\n"
    chunks = chunk_lines(text, "# f.py\n", 100, counter)
    assert all(counter.count(c) <= 100 for c in chunks)
    assert "".join(c.removeprefix("# f.py\n") for c in chunks) == text


@pytest.mark.parametrize(
    "code",
    [
        'author_email="armin.ronacher@active-4.com"',
        "secret_key = 'predictable-key'",
        'auth_url = "https://example.com/login/callback"',
        "author = 'Armin Ronacher'",
    ],
)
def test_ordinary_code_is_not_redacted(code: str) -> None:
    clean, found = redact(code)
    assert clean == code and not found
