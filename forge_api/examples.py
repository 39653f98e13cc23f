"""Training examples: the four JSONL formats and the one check of a record, used by the engine
as it trains, the agent as it builds datasets and the daemon as it imports one."""

from __future__ import annotations

from typing import Any, Literal

ExampleFormat = Literal["chat", "instruction", "completion", "text"]
ROLES = {"system", "user", "assistant"}


def detect_format(record: dict[str, Any]) -> ExampleFormat | None:
    if "messages" in record:
        return "chat"
    if "instruction" in record or "output" in record:
        return "instruction"
    if "prompt" in record or "completion" in record:
        return "completion"
    if "text" in record:
        return "text"
    return None


def record_problem(fmt: ExampleFormat, record: dict[str, Any]) -> str | None:
    """What is wrong with one record of a known format, or None (engine and agent both check)."""

    def is_text(key: str) -> bool:
        return isinstance(record.get(key), str) and bool(record[key].strip())

    if fmt == "chat":
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            return "messages must be a non-empty list"
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ROLES:
                return f"messages[{i}].role must be one of {sorted(ROLES)}"
            if not isinstance(m.get("content"), str):
                return f"messages[{i}].content must be a string"
        if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
            return "no assistant message to learn from"
        return None
    if fmt == "instruction":
        for key in ("instruction", "output"):
            if not is_text(key):
                return f"missing or empty field {key!r}"
        if "input" in record and not isinstance(record["input"], str):
            return "field 'input' must be a string"
        return None
    if fmt == "completion":
        for key in ("prompt", "completion"):
            if not isinstance(record.get(key), str):
                return f"missing field {key!r}"
        return None if record["completion"].strip() else "empty 'completion'"
    return None if is_text("text") else "missing or empty field 'text'"
