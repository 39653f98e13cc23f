"""What a decoded JSON-RPC message may hold, and how a reply is made valid JSON.

`json.loads` accepts things the rest of the daemon cannot carry: nesting deep enough to exhaust
the stack of whatever walks it next, strings with lone surrogates (they are not Unicode text:
SQLite and UTF-8 encoders refuse them later, far from the request), and integers beyond what
SQLite stores (2^63 - 1). Each is found here, right after parsing, with the dotted path of the
value, so the caller can answer -32600/-32602 naming it instead of failing deep inside with
-32603. `dumps` writes `null` for NaN and infinities, which JSON has no spelling for.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def problem(value: Any, where: str) -> tuple[str, str] | None:
    """The first thing in `value` the daemon cannot take: (dotted path, what is wrong)."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return path, f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, str):
            if not _is_text(item):
                return path, "not valid Unicode text (a lone surrogate)"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                return path, "integer out of range (at most 2^63 - 1 in size)"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_text(key):
                    return path, "a key that is not valid Unicode text (a lone surrogate)"
                stack.append((child, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}.{i}", depth + 1) for i, child in enumerate(item))
    return None


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def dumps(obj: Any) -> str:
    """Compact JSON; NaN and infinities (a loss that diverged) become null."""
    try:
        return json.dumps(obj, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"), default=str, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj
