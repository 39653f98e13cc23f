"""`key=value` settings as a person types them: `forge jobs submit -p`, `forge missions approve
--set`, and the TUI's "approve with changes" dialog. A value that reads as JSON (a number,
true/false, a list) is taken as one; anything else stays text."""

from __future__ import annotations

import json
import shlex
from typing import Any


def parse_setting(text: str, flag: str = "--set") -> tuple[str, Any]:
    """One `key=value`; ValueError naming the flag when it is not one."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{flag} wants key=value, got {text!r}")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def parse_settings(items: list[str], flag: str = "--set") -> dict[str, Any]:
    return dict(parse_setting(item, flag) for item in items)


def parse_line(line: str) -> dict[str, Any]:
    """Several settings on one line, split as a shell would: `steps=50 max_seq_len=768`."""
    return parse_settings(shlex.split(line), "each setting")
