"""Redacting a secret where it stands, and dropping a text only where that is not enough.

A finding whose value is known exactly (a Kingfisher finding, a detect-secrets finding, a match
of our own token patterns) is replaced by `[REDACTED:kind]` everywhere in the text, every
occurrence, not only on the line it was found on. A detect-secrets value that is not in its line
as written cannot be redacted there: the text is dropped. The result is then scanned again,
whole, by every check there is; if anything is still found (a key's BEGIN line, a key in pieces, a
password in prose, a value too short to replace safely), the text is dropped as before. So what
is kept is exactly what the full scan passes, and a test module with one fake key loses one
value, not the file.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from agent.secrets import find_secrets, redact, scanner_values

MIN_VALUE = 6
"""Shorter values are not replaced everywhere (they could be any word); the text is dropped."""
REGION_KINDS = {"Private Key"}
"""detect-secrets kinds whose value names a secret that spans lines (its value is a key's BEGIN
line, not the key): only our own pattern, which takes the block from BEGIN to END, removes it."""
SPREAD_FORMS = ("private-key-body", "private-key-base64", "joined-", "base64-")
"""Kinds found in a form spread over lines or hidden by an encoding (`agent.secret_forms`): no
one value says where the secret is, so a text holding one is dropped whole."""


@dataclass
class Cleaned:
    """A text after redaction: `text` None where it must be dropped, with `left` saying what was
    still found; `found` is every kind found in the original, `redacted` how many values went."""

    text: str | None
    found: Counter[str] = field(default_factory=Counter)
    redacted: int = 0
    left: Counter[str] = field(default_factory=Counter)


def _alternation(values: dict[str, str]) -> re.Pattern[str] | None:
    """One pattern matching any of `values`, longest first (a value inside another is not cut)."""
    if not values:
        return None
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered))


class Redactor:
    """Cleans texts of one build, knowing the values the first pass found in its repository."""

    def __init__(self, known: dict[str, str] | None = None) -> None:
        self.known = {v: k.rsplit(".", 1)[-1] for v, k in (known or {}).items() if v}
        self._known = _alternation(self.known)

    def clean(self, text: str, path: str) -> Cleaned:
        found = find_secrets(text, path)
        hits = set(self._known.findall(text)) if self._known else set()
        if not found and not hits:
            return Cleaned(text)
        found.update(f"kingfisher:{self.known[h]}" for h in hits)
        if any(kind.startswith(SPREAD_FORMS) for kind in found):
            return Cleaned(None, found, 0, found)
        values = scanner_values(text, path)
        if values is None:
            return Cleaned(None, found, 0, found)  # found in a decoded form
        text, ours = redact(text)  # first: a key's whole block, BEGIN to END
        values = {
            v: k
            for v, k in values.items()
            if len(v) >= MIN_VALUE and k not in REGION_KINDS and v in text
        }
        values.update({h: self.known[h] for h in hits})
        pattern = _alternation(values)
        redacted = sum(ours.values())
        if pattern is not None:

            def replace(m: re.Match[str]) -> str:
                kind = re.sub(r"[^\w.-]+", "-", values[m.group(0)]).strip("-").lower()
                return f"[REDACTED:{kind}]"

            text, n = pattern.subn(replace, text)
            redacted += n
        if left := find_secrets(text, path):
            return Cleaned(None, found, 0, left)
        return Cleaned(text, found, redacted)
