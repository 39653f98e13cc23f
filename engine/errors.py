"""Errors a job reports to the person as they are, without a traceback."""

import re


class EngineError(RuntimeError):
    """A job cannot go on; the message says what is wrong and where."""


OUT_OF_MEMORY_MARKERS = ("can't allocate memory", "out of memory", "cannot allocate memory")


def out_of_memory(exc: BaseException) -> str | None:
    """What to tell the person when `exc` is the machine (or the job's limit) running out of
    memory: the CPU allocator, CUDA and MPS each say it differently; None for anything else."""
    text = str(exc)
    if not isinstance(exc, MemoryError) and not (
        type(exc).__name__ == "OutOfMemoryError"
        or any(marker in text.lower() for marker in OUT_OF_MEMORY_MARKERS)
    ):
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    detail = f"could not allocate {int(asked[1]) / 2**20:.0f} MiB" if asked else text[:200]
    return (
        f"out of memory ({detail or type(exc).__name__}): lower batch_size or max_seq_len, "
        "or train with method=qlora; if jobs.memory_limit_gb is set, it may be too low for this job"
    )
