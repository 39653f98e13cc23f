"""`python .ci/uv_install.py VENV ARGS…`: `pip install ARGS…` into VENV, done by uv.

The Makefile builds .venv with this when it can: uv installs the same packages many times
faster than pip (this machine: 168 s with pip, under 1 min with uv from a cold cache, 5 s from
a warm one) and `make test` pays it on every clean clone. uv reads no pip configuration, so
pip's own settings (a local index, find-links, a constraints file: how a machine without the
internet, or a pinned torch, is set up) are read with `pip config list` and passed on; the
certificate bundle reaches uv through SSL_CERT_FILE as it is. Exits non-zero when uv is absent
or fails: the Makefile then installs with pip, so this is a speed-up, never a new way to fail.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

SETTINGS = ("index-url", "extra-index-url", "find-links", "constraint")
"""pip's settings that uv takes as the flag of the same name; each may hold several values."""


def pip_settings(python: str) -> list[str]:
    """uv flags for what pip is configured with here (global, user, site files and PIP_*)."""
    listed = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    flags: list[str] = []
    for line in listed.splitlines():
        key, sep, value = line.partition("=")
        setting = key.rsplit(".", 1)[-1]
        if not sep or setting not in SETTINGS:
            continue
        for item in str(ast.literal_eval(value)).split():
            if item not in flags:  # the same setting from the environment and a file
                flags += [f"--{setting}", item]
    return flags


def main(argv: list[str]) -> int:
    venv, args = Path(argv[0]), argv[1:]
    python = str(venv / "bin" / "python")
    uv = shutil.which("uv", path=str(venv / "bin"))
    if uv is None:
        print("uv is not in the venv: pip installs instead", file=sys.stderr)
        return 1
    # pip takes the best version across every index; uv's default stops at the first index
    # that has the package, which a partial local mirror would then pin.
    # Byte-code compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set (this
    # machine) nothing would write it later, and every process would compile torch anew (an
    # engine's start: 17 s instead of 8).
    command = [uv, "pip", "install", "--python", python, "--index-strategy", "unsafe-best-match"]
    command.append("--compile-bytecode")
    return subprocess.run([*command, *pip_settings(python), *args]).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
