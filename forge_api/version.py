"""The version of forge: the installed distribution's (`ai-forge`), read from its metadata, so
`forge --version`, the daemon's `system.status` and the package never disagree."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("ai-forge")
except PackageNotFoundError:  # run from a checkout that was never installed
    VERSION = "0.0.0+unknown"
