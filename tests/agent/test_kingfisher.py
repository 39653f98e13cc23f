"""Kingfisher's first pass over a real repository built here: what it hands the build, and that
the repository cannot switch it off."""

from __future__ import annotations

from pathlib import Path

from agent.kingfisher import KingfisherScan, secret_pieces
from tests.support.repos import commit, git
from tests.support.secret_plants import pem_key, provider_tokens


def test_a_multi_line_finding_is_replaced_line_by_line_not_its_armour() -> None:
    pem, body = pem_key()
    pieces = secret_pieces(pem)
    assert set(body) <= set(pieces)
    assert not any(p.startswith("-----") for p in pieces)
    assert secret_pieces("  npm_abcdefgh12345678  ") == ["npm_abcdefgh12345678"]


def test_first_pass_reads_history_and_commit_messages_and_ignores_the_repositorys_say(
    tmp_path: Path,
) -> None:
    tokens = provider_tokens()
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    # In a file that a later commit deletes (history only), behind an inline ignore comment.
    commit(repo, {"deploy.py": f'TOKEN = "{tokens["linear"]}"  # kingfisher:ignore\n'}, "Deploy")
    git(repo, "rm", "-q", "deploy.py")
    git(repo, "commit", "-q", "-m", "Drop the deploy script")
    # In a commit message's body only.
    commit(repo, {"a.txt": "a\n"}, f"Publish\n\nused {tokens['npm']} for it")
    message = git(repo, "log", "--format=%B")
    found = KingfisherScan(repo / ".git", message).result()
    assert found.status.startswith("ran: "), found.status
    assert tokens["linear"] in found.values and tokens["npm"] in found.values, found.values
