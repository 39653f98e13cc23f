"""Without `jobs.memory_limit_gb`, a job still cannot take more private memory than the machine
has: past that an allocation fails in the job instead of swapping the machine to a halt."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import mmap, sys
from engine.memory_limit import limit_memory, machine_memory
print(limit_memory(None))
total = machine_memory()
held = []
try:
    for _ in range(3):  # three maps of half the machine each: one more than it has
        held.append(mmap.mmap(-1, total // 2, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS))
except OSError as exc:
    print("refused after", len(held), exc.errno)
    sys.exit(0)
print("all", len(held), "maps taken")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA is Linux's")
def test_a_job_cannot_map_more_private_memory_than_the_machine_has() -> None:
    # Maps that are never touched take no memory: without a limit all three would be given.
    ran = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    said, result = ran.stdout.splitlines()[:2]
    assert said.startswith("private memory limited to the machine's"), ran.stdout
    assert result.startswith("refused after"), ran.stdout  # without the limit: all three
