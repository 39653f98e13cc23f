"""Saving the TUI's settings into the `[tui]` table of the config file, keeping the rest as is.

tomlkit edits the document in place, so a person's comments, order and other tables survive a
save from the Settings screen. The result is validated like any config before it replaces the
file, atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from forge_api.atomic_file import replacing
from forge_api.config import TuiConfig, load_config


def save_tui_settings(path: Path, settings: TuiConfig) -> None:
    """Write `settings` as the file's `[tui]` table; raises ConfigError if the result is bad."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    doc = tomlkit.parse(text)
    table: Any = doc.get("tui")
    if table is None:
        table = tomlkit.table()
        doc["tui"] = table
    for name, value in settings.model_dump().items():
        if name == "keys":
            keys = tomlkit.inline_table()
            keys.update(value)
            table[name] = keys
        else:
            table[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as partial:  # a file the daemon would refuse is never written
        partial.write_text(tomlkit.dumps(doc), encoding="utf-8")
        load_config(partial)
