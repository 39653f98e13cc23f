"""Secrets in the forms a line-by-line pattern cannot see: a private key's body without its
BEGIN line (a diff hunk that starts inside it), a key cut into string pieces joined by `+` or
written side by side, a key or token encoded in base64 (unquoted, in Markdown, in a YAML block
scalar), webhook URLs of chat providers, and passwords written in prose ("the admin password is
`…`", "pw: …"), as commit messages and READMEs hold them.

Each check reads the whole text at once and says only which kinds it found: a text that holds
one is dropped (a file whole, an example) like any other secret. Every decoded or joined piece
goes through the same patterns as the text itself (`agent.secrets.PATTERNS`).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Callable

LINE_PREFIX = re.compile(r"""^[ \t+\-]*["'`]?|["'`,;\\+ \t]*$""")
"""What surrounds a line of a key in a diff, a string or a list: diff markers, quotes, commas."""
KEY_LINE = re.compile(r"^[A-Za-z0-9+/]{60,76}={0,2}$")
"""A line of a PEM body: 64 characters of base64 (some tools write 76)."""
KEY_LINES_AT_LEAST = 4
"""Lines of key body in a row: a 2048-bit RSA key has 25; a shorter run of base64 lines is more
likely data (an image, a hash list) than a key."""

# A string literal, in either quote, with its escapes.
LITERAL = re.compile(r""""((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'""")
BETWEEN_PIECES = re.compile(r"^[\s+\\(]*$")
"""What may stand between the pieces of one string: `+`, a line break, a continuation, `(`."""

BASE64_RUN = re.compile(r"(?:[A-Za-z0-9+/]{16,}={0,2}[ \t]*\n?[ \t]*){2,}|[A-Za-z0-9+/]{40,}={0,2}")
PEM_IN_BASE64 = re.compile(r"LS0tLS1CRUdJT|0tLS0tQkVHSU|tLS0tLUJFR0lO")
"""`-----BEGIN` in base64, at each of the three alignments."""

WEBHOOK = re.compile(
    r"https://(?:(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]{20,}"
    r"|hooks\.slack\.com/(?:services|workflows|triggers)/[\w/-]{20,}"
    r"|[\w-]+\.webhook\.office\.com/[\w/@.-]{20,}|outlook\.office(?:365)?\.com/webhook/[\w/@.-]{20,}"
    r"|chat\.googleapis\.com/v1/spaces/[\w-]+/messages\?key=[\w-]{20,}[^\s\"')]*)"
)
PROSE_PASSWORD = re.compile(
    r"""(?ix)
    \b(?:pass(?:word|wd|phrase)?|pw|pwd|secret|token|api[ _-]?key)\b   # what it is
    (?:[ \t]+(?:is|was|=|:)|[ \t]*[:=])                                # is, was, =, :
    [ \t]*(?:now[ \t]+)?[`'"]?(?P<value>[^\s`'"]{6,})[`'"]?
    """
)
PLACEHOLDERS = re.compile(
    r"(?i)^(?:x+|\*+|\.+|<[^>]*>|\$\{?\w+\}?|%\(?\w+\)?s?|\{\{?[^}]*\}?\}|none|null|empty|"
    r"required|optional|changeme|password|secret|example|your[_-]?\w*|\w+[_-]here|"
    r"(?:set|read|stored|given|taken|kept|used|passed|needed|sent)\b.*)$"
)


def _strip(line: str) -> str:
    return LINE_PREFIX.sub("", line)


def key_body(text: str) -> bool:
    """A run of lines that are a PEM body, whatever surrounds each (diff markers, quotes)."""
    run = 0
    for line in text.splitlines():
        run = run + 1 if KEY_LINE.match(_strip(line)) else 0
        if run >= KEY_LINES_AT_LEAST:
            return True
    return False


def joined_strings(text: str) -> list[str]:
    """Each run of string literals written to make one string (`"a" + "b"`, `"a" "b"`, one per
    line in parentheses), joined, its `\\n` escapes made line breaks; only runs of two or more."""
    joined: list[str] = []
    pieces: list[str] = []
    end = -1
    for m in LITERAL.finditer(text):
        piece = m.group(1) if m.group(1) is not None else m.group(2)
        if pieces and not BETWEEN_PIECES.match(text[end : m.start()]):
            if len(pieces) > 1:
                joined.append("".join(pieces))
            pieces = []
        pieces.append(piece.replace("\\n", "\n").replace("\\r", ""))
        end = m.end()
    if len(pieces) > 1:
        joined.append("".join(pieces))
    return joined


def decoded_blobs(text: str) -> list[str]:
    """Base64 runs of the text (one line, or lines of a block scalar) decoded, where they decode
    to text."""
    found = []
    for m in BASE64_RUN.finditer(text):
        blob = re.sub(r"\s", "", m.group(0))
        if len(blob) < 40:
            continue
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = raw.decode("utf-8", "ignore")
        if decoded and sum(c.isprintable() or c.isspace() for c in decoded) / len(decoded) > 0.9:
            found.append(decoded)
    return found


def entropy(value: str) -> float:
    """Shannon entropy of the characters of `value`, in bits a character."""
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


HEX_TOKEN = re.compile(r"[0-9a-fA-F]{32,}")
BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")


def random_token(value: str) -> bool:
    """One word of random characters, as a key is once decoded (YAML's `!!binary` of a key): 32
    hex digits or more, or 24 base64 characters or more with detect-secrets' entropy limits
    (3.0 bits a character for hex, 4.5 for base64)."""
    if HEX_TOKEN.fullmatch(value):
        return entropy(value) > 3.0
    return bool(BASE64_TOKEN.fullmatch(value)) and entropy(value) > 4.5


CODE_VALUE = re.compile(r"[()\[\]{}<>]|^[A-Za-z_]+$|^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+$")
"""A value that is code, not a literal: a call, an index, a type, a name, a dotted attribute."""


def prose_passwords(text: str) -> int:
    """Passwords and tokens said in words: `the admin password is hunter2`, `pw: Tr0ub4dor&3`.
    A value counts where it could be one: no placeholder, no code, a digit or a symbol in it."""
    count = 0
    for m in PROSE_PASSWORD.finditer(text):
        value = m.group("value").rstrip(".,;:!?)")
        if len(value) < 6 or PLACEHOLDERS.match(value) or CODE_VALUE.search(value):
            continue
        if not re.search(r"[0-9!@#$%^&*+=~?]", value):
            continue
        count += 1
    return count


def hidden_secrets(text: str, scan: Callable[[str], Counter[str]]) -> Counter[str]:
    """The kinds of secret hidden in `text` in the forms above; `scan` finds secrets in a piece
    of text (the patterns a text itself goes through)."""
    found: Counter[str] = Counter()
    if key_body(text):
        found["private-key-body"] += 1
    for piece in joined_strings(text):
        if kinds := scan(piece):
            found.update({f"joined-{k}": n for k, n in kinds.items()})
    if PEM_IN_BASE64.search(text):
        found["private-key-base64"] += 1
    for decoded in decoded_blobs(text):
        if kinds := scan(decoded):
            found.update({f"base64-{k}": n for k, n in kinds.items()})
        elif random_token(decoded.strip()):
            found["base64-random-token"] += 1
    if n := len(WEBHOOK.findall(text)):
        found["webhook-url"] += n
    if n := prose_passwords(text):
        found["password-in-prose"] += n
    return found
