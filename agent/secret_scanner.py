"""detect-secrets as the agent runs it: every plugin, the allowlist pragma off, each distinct
line scanned once, and only the lines some plugin could find anything in.

detect-secrets (Yelp's scanner) goes line by line, each line through every plugin and filter by
dependency injection: about half a millisecond a line, most of a dataset build. Two things keep
its verdicts while sparing it most lines:

* **One verdict per line.** Its diff scan is line by line: what a line yields depends on the line
  (right-stripped) and, of the file's name, only on the file type its keyword plugin reads from
  the extension, once the name-only filters (lock files, swagger, non-text) let the file through;
  no filter in use reads neighbouring lines (the allowlist, which does, is off). So a verdict is
  kept per (file type, line): a line seen before, in this file, another, or an example cut from
  it, is not scanned again.
* **Lines no plugin's pattern matches are clean.** Every plugin in use finds a secret only in a
  match of one of its regular expressions (the provider patterns, the quoted strings the entropy
  plugins measure, the keyword plugin's patterns for the file type); a line none of them matches
  can yield nothing. Where a plugin is not one of those known shapes, every line is scanned.

`tests/agent/test_secret_corpus.py` checks the result against a plain scan of each whole file of
a scanner's test data, as several file types.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_ready = False
# Filters of detect-secrets turned off: the allowlist pragma (the repository's word is not
# ours), and the check that the named file exists (we scan text, not the disk).
_OFF = (
    "detect_secrets.filters.allowlist.is_line_allowlisted",
    "detect_secrets.filters.common.is_invalid_file",
)
LINE_CACHE_LIMIT = 200_000
"""Lines whose verdict is remembered (some tens of MB at most); then it starts over."""
_verdicts: dict[tuple[Any, str], tuple[tuple[str, str], ...]] = {}
"""(file type, line) → (kind, secret value) of each secret detect-secrets finds in that line."""
Check = Callable[[str], bool]
_checks: dict[Any, list[Check] | None] = {}


def scan_diff() -> Any:
    """detect-secrets' diff scanner, its settings made once for this process: every plugin."""
    global _ready
    with _lock:
        if not _ready:
            from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
            from detect_secrets.settings import (
                cache_bust,
                configure_settings_from_baseline,
                get_settings,
            )

            cache_bust()  # first: it resets the settings it finds
            plugins: list[Any] = list(get_mapping_from_secret_type_to_class().values())
            configure_settings_from_baseline(
                {"plugins_used": [{"name": t.__name__} for t in plugins]}
            )
            get_settings().disable_filters(*_OFF)
            _ready = True
    from detect_secrets.core.scan import scan_diff as scan

    return scan


def as_diff(name: str, lines: list[str]) -> str:
    """`lines` as the diff of one added file `name`: what detect-secrets scans."""
    return (
        f"diff --git a/{name} b/{name}\nnew file mode 100644\n--- /dev/null\n+++ b/{name}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    )


KEYWORD_ROOTS = ("key", "pass", "pwd", "secret", "contrase")
"""Every word of the keyword plugin's list holds one of these (checked at run time), and a
line its patterns match holds it once case-folded: each letter here matches, ignoring case or
not, only characters that case-fold to it (checked over all of Unicode)."""


def _holds_group(pattern: re.Pattern[str], words: str) -> bool:
    """Whether every match of `pattern` holds a match of the group `(words)`: the group is one of
    the top-level items of its sequence, none of which is optional."""
    parser: Any = importlib.import_module("re._parser")
    inner = repr(parser.parse(words, pattern.flags).data)
    return any(
        op == parser.SUBPATTERN and repr(av[-1].data) == inner
        for op, av in parser.parse(pattern.pattern, pattern.flags).data
    )


def _keyword_check(patterns: list[re.Pattern[str]]) -> Check:
    """The keyword plugin's patterns, tried only on lines that hold one of its words' roots,
    where each pattern is seen to require one of the words; else on every line."""
    from detect_secrets.plugins.keyword import DENYLIST

    words_known = all(
        re.fullmatch(r"([a-zñ]|_\?)+", w) and any(r in w.replace("_?", "") for r in KEYWORD_ROOTS)
        for w in DENYLIST
    )
    required = all(_holds_group(p, "|".join(DENYLIST)) for p in patterns)
    anywhere = _regex_check(patterns)

    def rooted(line: str) -> bool:
        folded = line.casefold()
        return any(r in folded for r in KEYWORD_ROOTS) and anywhere(line)

    return rooted if words_known and required else anywhere


def _entropy_check(plugin: Any) -> Check:
    """What the entropy plugins report: a string of their alphabet (quoted) whose entropy is
    over their limit, measured by their own methods."""

    def check(line: str) -> bool:
        limit = plugin.entropy_limit
        return any(plugin.calculate_shannon_entropy(s) > limit for s in plugin.analyze_string(line))

    return check


def _regex_check(patterns: list[re.Pattern[str]]) -> Check:
    def check(line: str) -> bool:
        return any(p.search(line) for p in patterns)

    return check


def plugin_checks(file_type: Any) -> list[Check] | None:
    """For each plugin in use, a test a line must pass for the plugin to find a secret in it
    (in a file of `file_type`), or None where a plugin is not of a shape known here."""
    if file_type in _checks:
        return _checks[file_type]
    from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
    from detect_secrets.plugins.jwt import JwtTokenDetector
    from detect_secrets.plugins.keyword import (
        QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
        REGEX_BY_FILETYPE,
        KeywordDetector,
    )
    from detect_secrets.settings import get_plugins

    def shape(kind: Any) -> tuple[Any, Any]:
        return kind.analyze_line, kind.analyze_string

    by_regex = {RegexBasedDetector.analyze_string, JwtTokenDetector.analyze_string}
    found: list[Check] = []
    for plugin in get_plugins():
        kind = type(plugin)
        if shape(kind) == shape(HighEntropyStringsPlugin):
            found.append(_entropy_check(plugin))
        elif shape(kind) == shape(KeywordDetector):
            table = REGEX_BY_FILETYPE.get(file_type, QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
            found.append(_keyword_check(list(table)))
        elif kind.analyze_line is BasePlugin.analyze_line and kind.analyze_string in by_regex:
            found.append(_regex_check(list(plugin.denylist)))
        else:
            _checks[file_type] = None
            return None
    _checks[file_type] = found
    return found


def _suspect(line: str, checks: list[Check] | None) -> bool:
    return checks is None or any(check(line) for check in checks)


def forget_lines() -> None:
    """Drop every remembered line verdict."""
    _verdicts.clear()


def scanner_findings(lines: list[str], name: str) -> list[tuple[str, str, str]]:
    """What detect-secrets finds in `lines`, the content of a file named `name`: the line, the
    kind and the value of each secret, as many times as it is found."""
    from detect_secrets.core.scan import _is_filtered_out
    from detect_secrets.util.filetype import determine_file_type

    scan = scan_diff()
    if _is_filtered_out(required_filter_parameters=["filename"], filename=name):
        return []
    file_type = determine_file_type(name)
    keys = [(file_type, line.rstrip()) for line in lines]
    known = {k: v for k in set(keys) if (v := _verdicts.get(k)) is not None}
    new = [line for _, line in dict.fromkeys(k for k in keys if k not in known)]
    checks = plugin_checks(file_type)
    suspects = [line for line in new if _suspect(line, checks)]
    at: dict[int, list[tuple[str, str]]] = {}
    if suspects:
        for secret in scan(as_diff(name, suspects)):
            at.setdefault(secret.line_number, []).append(
                (str(secret.type), str(secret.secret_value or ""))
            )
    verdict = {line: tuple(at.get(n, ())) for n, line in enumerate(suspects, start=1)}
    if len(_verdicts) + len(new) > LINE_CACHE_LIMIT:
        _verdicts.clear()
    for line in new:
        known[(file_type, line)] = _verdicts[(file_type, line)] = verdict.get(line, ())
    return [(k[1], kind, value) for k in keys for kind, value in known[k]]


def scanner_kinds(lines: list[str], name: str) -> Counter[str]:
    """The kinds of `scanner_findings`, counted."""
    return Counter(kind for _, kind, _ in scanner_findings(lines, name))
