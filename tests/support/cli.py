"""Running the real `forge` command line as a person would, in a given FORGE_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def forge(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forge_cli", *args],
        env=dict(os.environ, FORGE_HOME=str(home), **(env or {})),
        capture_output=True,
        text=True,
        timeout=180,
    )
