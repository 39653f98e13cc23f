"""A stand-in for `python -m engine`: the `[jobs] python` setting pointed at a script, so a
test can make a real daemon's runner face exactly the output it wants (a flood of lines, a NaN
metric) without loading a model. Everything else (the runner, the store, the socket) is real."""

from __future__ import annotations

import sys
from pathlib import Path


def fake_engine(folder: Path, body: str) -> str:
    """A `[jobs]` config section whose engine runs `body` (Python, given `spec` as a dict)."""
    script = folder / "fake-engine"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "spec = json.load(open(sys.argv[-1]))\n"
        "def emit(**event):\n"
        "    print(json.dumps(event), flush=True)\n"
        f"{body}\n"
    )
    script.chmod(0o755)
    # A script, not a Python: no warm engine host can be started from it.
    return f'[jobs]\npython = "{script}"\nwarm_engine_idle_s = 0\n'
