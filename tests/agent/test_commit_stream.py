"""The commits builder reads every diff from one `git log --patch` stream: each file's names and
patch must be what git's plumbing says, for odd names, renames, binaries, mode changes and a
root commit, whatever the repository's own config asks of git's porcelain output; and on a real
history, what GitPython's diff of each commit says.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from agent.commit_stream import FileDiff, commit_patches, unquote
from agent.safe_git import open_repo
from tests.support.repos import clone_markupsafe, commit, git, needs_markupsafe

ODD_NAMES = ["sp ace.txt", 't"q.txt', "ümlaut.txt", "tab\there.txt", "back\\slash.txt"]
PORCELAIN_CONFIG = {
    "diff.noprefix": "true",
    "diff.mnemonicPrefix": "true",
    "color.ui": "always",
    "color.diff": "always",
    "log.showRoot": "false",
    "log.showSignature": "true",
    "diff.renames": "false",
    "core.quotePath": "false",
    "diff.submodule": "log",
    "log.diffMerges": "separate",
}


def history(repo: Path) -> list[str]:
    """Commits covering the odd cases, newest first."""
    first = commit(repo, {n: f"{n}\n" for n in ODD_NAMES} | {"bin.dat": b"a\0b"}, "Add files")
    (repo / "run.sh").write_text("echo hi\n")
    git(repo, "add", "run.sh")
    git(repo, "update-index", "--chmod=+x", "run.sh")
    commit(repo, {"bin.dat": b"c\0d", "ümlaut.txt": "ä\nö\n"}, "Change a binary, chmod one")
    git(repo, "mv", "sp ace.txt", "sp ace moved.txt")
    git(repo, "rm", "-q", 't"q.txt')
    last = commit(repo, {"nn.txt": "no newline"}, "Rename, delete, a file without a newline")
    return [last, git(repo, "rev-parse", "HEAD~1"), first]


def patches(repo: Path) -> list[tuple[str, list[FileDiff]]]:
    handle = open_repo(repo)
    with closing(commit_patches(handle, handle.head.commit.hexsha)) as stream:
        return list(stream)


def test_names_renames_binaries_and_the_root_commit(tmp_path: Path) -> None:
    repo = tmp_path / "odd"
    repo.mkdir()
    git(repo, "init", "-q")
    shas = history(repo)
    got = patches(repo)
    assert [sha for sha, _ in got] == shas
    root = {d.path: d for d in got[2][1]}
    assert set(root) == {*ODD_NAMES, "bin.dat"}
    assert all(d.old == "/dev/null" and d.new == d.path for d in root.values())
    assert root["tab\there.txt"].patch == b"@@ -0,0 +1 @@\n+tab\there.txt\n"
    assert root["bin.dat"].patch.startswith(b"Binary files /dev/null and b/bin.dat differ")
    changed = {d.path: d for d in got[1][1]}
    assert changed["run.sh"].old == "/dev/null"
    assert changed["ümlaut.txt"].patch.endswith(b"+\xc3\xa4\n+\xc3\xb6\n")
    last = {d.path: d for d in got[0][1]}
    assert (last["sp ace moved.txt"].old, last["sp ace moved.txt"].patch) == ("sp ace.txt", b"")
    assert last['t"q.txt'].new == "/dev/null"
    assert last["nn.txt"].patch.endswith(b"+no newline\n\\ No newline at end of file\n")


def test_the_repositorys_porcelain_config_changes_nothing(tmp_path: Path) -> None:
    plain, configured = tmp_path / "plain", tmp_path / "configured"
    for repo in (plain, configured):
        repo.mkdir()
        git(repo, "init", "-q")
    for key, value in PORCELAIN_CONFIG.items():
        git(configured, "config", key, value)
    history(plain)
    history(configured)
    assert [d for _, d in patches(configured)] == [d for _, d in patches(plain)]


def test_unquote_reads_gits_c_quoting() -> None:
    assert unquote(b'"a/\\303\\274 \\"q\\" \\\\ \\t"') == 'a/ü "q" \\ \t'.encode()
    assert unquote(b"plain name") == b"plain name"


@needs_markupsafe
def test_a_real_history_matches_gitpythons_diffs(tmp_path: Path) -> None:
    repo = clone_markupsafe(tmp_path / "markupsafe")
    handle = open_repo(repo)
    streamed = dict(patches(repo))
    assert len(streamed) == 833
    for sha in list(streamed)[::20]:  # every 20th commit: GitPython is slow
        one = handle.commit(sha)
        if len(one.parents) != 1:
            continue
        theirs = one.parents[0].diff(one, create_patch=True, no_ext_diff=True, no_textconv=True)
        expected = [
            (
                d.b_path or d.a_path,
                "/dev/null" if d.new_file else d.a_path,
                "/dev/null" if d.deleted_file else d.b_path,
                d.diff,
            )
            for d in theirs
        ]
        assert [(d.path, d.old, d.new, d.patch) for d in streamed[sha]] == expected, sha
