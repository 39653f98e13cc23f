"""A stand-in engine for the streaming benchmark: it speaks the engine's stdout protocol (JSON
lines) and emits `--rate` log lines a second for `--seconds`, each carrying its send time.

The daemon runs it as `<jobs.python> -m engine <spec.json>` (a wrapper script drops those
arguments); the baseline runs it directly. Standard library only, so it starts at once.
"""

from __future__ import annotations

import json
import os
import sys
import time

RATE = int(os.environ.get("FIREHOSE_RATE", "1000"))
SECONDS = float(os.environ.get("FIREHOSE_SECONDS", "10"))
BURST_S = 0.01


def main() -> int:
    out = sys.stdout
    start = time.monotonic()
    sent = 0
    total = int(RATE * SECONDS)
    while sent < total:
        due = min(total, int((time.monotonic() - start) * RATE) + 1)
        while sent < due:
            event = {"type": "log", "ts": time.time(), "level": "info"}
            event["message"] = f"line {sent} sent {time.time():.6f}"
            out.write(json.dumps(event) + "\n")
            sent += 1
        out.flush()
        time.sleep(BURST_S)
    out.write(json.dumps({"type": "done", "ts": time.time(), "summary": {"lines": sent}}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
