"""Finding secrets in a text: the second pass of a dataset build (Kingfisher's is the first,
`agent.kingfisher`), run on every file whole before it is cut into examples (so a private key
split across chunks is still one key) and on every example after. What is found is redacted or
the text dropped by `agent.redaction`; a file whose name says it holds credentials is not read.

Secrets are found by detect-secrets (Yelp's scanner: its plugins for keys and tokens of known
providers, private keys, keywords, and high-entropy strings, with its filters for false
positives, except the allowlist pragma: a repository does not decide what we train on), and by
a few token patterns of our own where it stays silent (`DB_PASS=hunter2hunter2` in a shell
file). Conservative by design: a false positive costs one file or example; a false negative
puts a credential into model weights.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections import Counter
from pathlib import PurePosixPath

from agent.secret_forms import entropy, hidden_secrets
from agent.secret_scanner import forget_lines, scanner_findings, scanner_kinds

# File names (matched against the base name) whose whole content is a credential store.
SECRET_FILES = [
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "*.ppk",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    "credentials",
    "credentials.json",
    "*.kdbx",
    "secrets.yaml",
    "secrets.yml",
    "secrets.json",
    "secrets.toml",
    "*.tfstate",
    "service-account*.json",
    "*.gpg",
    "*.asc",
]

PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "private-key",
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.S,
        ),
    ),
    ("aws-access-key", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github-token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("gitlab-token", re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}\b")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("stripe-key", re.compile(r"\b[sr]k_(live|test)_[0-9A-Za-z]{16,}\b")),
    ("openai-key", re.compile(r"\bsk-(proj-|ant-)?[A-Za-z0-9_\-]{20,}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")),
    ("bearer-token", re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9_\-.=]{20,}")),
    ("url-credentials", re.compile(r"\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:[^/\s@]{3,}@")),
    (
        # NAME=value as in .env files and shell scripts: a literal whatever its entropy.
        "env-credential",
        re.compile(
            r"(?m)^\s*(export\s+)?[A-Z0-9_]*(PASS|PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_KEY|"
            r"ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)[A-Z0-9_]*=(?![\s$\"'`{(<]|\[REDACTED)\S{6,}"
        ),
    ),
]

# name = "value" where the name says secret and the value looks random enough.
ASSIGNMENT = re.compile(
    r"""(?ix)
    (?<![a-z0-9_.\-])  # only where a name starts: the same matches, tried once per name
    (?P<name>[a-z0-9_.\-]*(secret|token|passw(or)?d|pwd|api[_\-]?key|access[_\-]?key|
        private[_\-]?key|client[_\-]?secret|auth(?![a-z]))[a-z0-9_.\-]*)
    (?P<sep>\s*[:=]\s*|\s*=>\s*)
    (?P<quote>["']?)(?P<value>[^\s"'`,;]{8,})(?P=quote)
    """
)
MIN_ENTROPY = 3.0
# An unquoted value that reads as code (a call, an index, a lower-case dotted name) is an
# expression, not a literal secret: `token = compute_token(text)`, `key = settings.api_key`.
CODE_LIKE = re.compile(r"[()\[\]]|^(?![0-9a-f]{32,}$)[a-z_][a-z0-9_.]*$")
"""(A long run of hex digits is a key or a hash, however it reads: `SECRET: 3fa8…`.)"""
# Values that are not secrets whatever their name says: an e-mail address, a plain URL (one with
# credentials is caught by `url-credentials`), words such as `'predictable-key'` or `Dev Key`.
EMAIL_OR_URL = re.compile(r"^([^@\s]+@[^@\s]+\.[a-z]{2,}|https?://[^@\s]+)$", re.IGNORECASE)
WORDS = re.compile(r"^[A-Za-z]+([-_ .][A-Za-z]+)*$")


def not_a_secret(value: str) -> bool:
    """An address, a URL, or words in ordinary case (random letters mix their case)."""
    if EMAIL_OR_URL.match(value):
        return True
    return bool(WORDS.match(value)) and all(
        w.islower() or w.isupper() or w.istitle() for w in re.split(r"[-_ .]", value)
    )


def secret_file_reason(path: str) -> str | None:
    """Why this file must not be read at all, or None."""
    name = PurePosixPath(path).name
    for pattern in SECRET_FILES:
        if fnmatch.fnmatch(name, pattern):
            return f"credential file ({pattern})"
    return None


def redact(text: str) -> tuple[str, Counter[str]]:
    """The text with every secret-looking token replaced, and how many of each kind."""
    found: Counter[str] = Counter()
    for kind, pattern in PATTERNS:
        text, n = pattern.subn(f"[REDACTED:{kind}]", text)
        if n:
            found[kind] += n

    def assignment(m: re.Match[str]) -> str:
        value = m.group("value")
        if value.startswith("[REDACTED") or entropy(value) < MIN_ENTROPY:
            return m.group(0)
        if not m.group("quote") and CODE_LIKE.search(value):
            return m.group(0)
        if not_a_secret(value):
            return m.group(0)
        found["secret-assignment"] += 1
        q = m.group("quote")
        return f"{m.group('name')}{m.group('sep')}{q}[REDACTED:secret-assignment]{q}"

    text = ASSIGNMENT.sub(assignment, text)
    return text, found


_LINE_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


TEXTS_REMEMBERED = 100_000
"""Texts whose verdict is kept (a digest and a few counts each): a file or example that has not
changed since the last build is not scanned again; past this many it starts over."""
_texts: dict[tuple[str, bytes], Counter[str]] = {}


def _scanner_name(path: str) -> str:
    return re.sub(r"\s", "_", path) or "example.txt"


def _scanner_lines(text: str) -> list[str]:
    """The text's lines as detect-secrets reads them (it scans diffs given as text: the whole
    text as one added file, where only `\\n` ends a line)."""
    return _LINE_BREAKS.sub(" ", text).split("\n")


def scanner_values(text: str, path: str = "example.txt") -> dict[str, str] | None:
    """Each secret value detect-secrets finds in `text` (the content of `path`) and its kind;
    None where a value is not written in the line it was found in (detect-secrets decodes YAML's
    `!!binary`, for one), so that it cannot be redacted where it stands."""
    found = scanner_findings(_scanner_lines(text), _scanner_name(path))
    if any(not value or value not in line for line, _, value in found):
        return None
    return {value: kind for _, kind, value in found}


def find_secrets(text: str, path: str = "example.txt") -> Counter[str]:
    """The kinds of secret `text` holds (the content of `path`, whose type guides the
    scanner), and how many of each; empty when it holds none."""
    name = _scanner_name(path)
    key = (name, hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest())
    if (known := _texts.get(key)) is not None:
        return Counter(known)
    _, found = redact(text)  # our patterns, counted
    found.update(hidden_secrets(text, lambda piece: redact(piece)[1]))
    found.update(scanner_kinds(_scanner_lines(text), name))
    if len(_texts) >= TEXTS_REMEMBERED:
        _texts.clear()
    _texts[key] = +found
    return +found


def forget_verdicts() -> None:
    """Drop every remembered verdict, of whole texts and of lines (a benchmark's cold start)."""
    _texts.clear()
    forget_lines()
