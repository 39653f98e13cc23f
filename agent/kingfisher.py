"""Kingfisher (MongoDB's secret scanner, compiled, ~490 rules with the gitleaks/betterleaks sets)
as the first pass of a dataset build: it reads the repository's history and commit messages in
its own process while the builders work in ours, and hands back the exact secret values it
found, which every text of the build then has replaced in place.

It is run only as a scanner of what is on this disk: `--no-validate` (no key is ever tried
against its provider), `--no-update-check`, no config file (it reads one only when told), inline
`kingfisher:ignore` comments off (a repository does not decide what we train on), no archive
extracted. Where the `kingfisher-bin` wheel has no binary for this platform, or the scan fails,
the build goes on with the second pass alone (detect-secrets and our own checks, which see every
text anyway) and the card says so.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

FLAGS = (
    "--no-validate",
    "--no-update-check",
    "--no-ignore",
    "--no-extract-archives",
    "--no-binary",
    "--confidence",
    "low",
    "--format",
    "jsonl",
    "--quiet",
)
PIECE = re.compile(r"\S{8,}")
"""A secret value's pieces: a multi-line finding (a key's body, a YAML block) is replaced line by
line, since a diff or a string literal puts something before each of its lines."""
ARMOUR = re.compile(r"^-{3,}|^[\w.-]+:$")
"""Pieces that name a secret rather than hold it (`-----BEGIN`, `tls.key:`): left as they are."""
WAIT_S = 600.0
"""How long a build waits for the scan before it goes on without it."""


@dataclass
class FirstPass:
    """What the first pass found: each secret value (a piece of one) and the rule that found it,
    and one line for the card saying how the pass went."""

    values: dict[str, str] = field(default_factory=dict)
    status: str = "not run"


def binary() -> str | None:
    """The Kingfisher binary the `kingfisher-bin` wheel ships, or None where it has none."""
    try:
        import kingfisher

        return str(kingfisher.get_binary_path())
    except (ImportError, FileNotFoundError, OSError):
        return None


def secret_pieces(snippet: str) -> list[str]:
    """The parts of a finding's snippet to replace wherever they occur: the whole snippet when it
    is one line, else each of its lines' long runs that are not armour."""
    snippet = snippet.strip()
    if snippet and "\n" not in snippet and len(snippet) >= 8:
        return [snippet]
    return [p for p in PIECE.findall(snippet) if not ARMOUR.match(p)]


class KingfisherScan:
    """One Kingfisher run over a repository's object store (every blob of its history, from
    `since` on where given) and the commit messages a build reads, started at once."""

    def __init__(self, git_dir: Path, messages: str, since: str | None = None) -> None:
        self.began = time.perf_counter()
        self.proc: subprocess.Popen[bytes] | None = None
        self._files = ExitStack()  # closed by result(): the files live as long as the scan
        self._stdout: IO[bytes] = self._files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        self._stderr: IO[bytes] = self._files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        exe = binary()
        if exe is None:
            self.status = "not run: the kingfisher-bin wheel has no binary for this platform"
            return
        listed = self._files.enter_context(tempfile.NamedTemporaryFile(suffix=".txt"))  # noqa: SIM115
        listed.write(messages.encode("utf-8", "surrogatepass"))
        listed.flush()
        command = [exe, "scan", str(git_dir), listed.name, *FLAGS]
        if since:
            command += ["--since-commit", since]
        try:
            self.proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr
            )
        except OSError as e:
            self.status = f"not run: {e}"

    def result(self, wait_s: float = WAIT_S) -> FirstPass:
        """The values found; waits for the scan (up to `wait_s`, then ends it)."""
        with self._files:
            return self._result(wait_s)

    def _result(self, wait_s: float) -> FirstPass:
        if self.proc is None:
            return FirstPass(status=self.status)
        try:
            code = self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return FirstPass(status=f"not used: still scanning after {wait_s:.0f} s")
        if code not in (0, 200):  # 200: it found something
            self._stderr.seek(0)
            said = self._stderr.read().decode(errors="replace").strip().splitlines()
            return FirstPass(status=f"failed (exit {code}): {said[0] if said else 'no message'}")
        self._stdout.seek(0)
        values: dict[str, str] = {}
        findings = 0
        for line in self._stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            finding = record.get("finding") if isinstance(record, dict) else None
            if not isinstance(finding, dict) or not isinstance(finding.get("snippet"), str):
                continue
            findings += 1
            rule = str((record.get("rule") or {}).get("id", "kingfisher"))
            for piece in secret_pieces(finding["snippet"]):
                values.setdefault(piece, rule)
        took = time.perf_counter() - self.began
        return FirstPass(values, f"ran: {findings} findings in {took:.2f} s")
