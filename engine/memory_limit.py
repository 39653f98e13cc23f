"""The memory a job may take: what `jobs.memory_limit_gb` says (address space), and without it,
no more private memory than the machine has.

A job that grows without bound (a malformed file declaring an array of 2^60 elements, a bug)
would otherwise push the whole machine into swap and the kernel's OOM killer, taking the daemon
and the person's work with it. The default bounds the job's private writable memory
(RLIMIT_DATA, Linux ≥ 4.7), not its address space: CUDA and glibc reserve address space they
never fill (PROT_NONE mappings, per-thread arenas), which an RLIMIT_AS of the machine's size
would refuse, while a mapped model file or a reservation costs nothing against RLIMIT_DATA. Past
the limit an allocation fails in the job, which fails saying it ran out of memory.
"""

from __future__ import annotations

import os
import resource
import sys


def machine_memory() -> int | None:
    """Physical memory in bytes, where the system says."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def limit_memory(address_space: int | None) -> str | None:
    """Apply the job's memory limit; what was applied, in words, or None."""
    if address_space:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        return f"address space limited to {address_space / 2**30:.1f} GiB (jobs.memory_limit_gb)"
    total = machine_memory()
    if not total or not sys.platform.startswith("linux"):
        return None  # macOS does not enforce RLIMIT_DATA
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if soft != resource.RLIM_INFINITY and soft <= total:
        return None  # already bounded, by the person or the service manager
    limit = total if hard == resource.RLIM_INFINITY else min(total, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return f"private memory limited to the machine's {limit / 2**30:.1f} GiB"
