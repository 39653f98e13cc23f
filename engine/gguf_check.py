"""A GGUF file's header walked with every count bounded by the file's size, before `gguf` reads it.

`gguf`'s reader believes what a header declares: a 48-byte file declaring an array of 2^60
elements made an import job grow without bound (6.6 GB in two minutes). Here every length and
count is checked against the bytes left in the file before anything is read or allocated, so a
malformed or hostile file is refused at once, saying where it is wrong, and a good one costs one
pass over its metadata (SmolLM2's 49k-token vocabulary: a few tens of milliseconds).
"""

from __future__ import annotations

import struct
from pathlib import Path

from engine.errors import EngineError

MAGIC = b"GGUF"
VERSIONS = (2, 3)
# GGUF value types (gguf-py's GGUFValueType): fixed sizes; 8 is a string, 9 an array.
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9
MAX_DIMS = 8
MAX_DEPTH = 4


class NotGGUF(EngineError):
    """The file is not a GGUF file a loader may read."""


class _Header:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.file = path.open("rb")
        self.at = 0

    def fail(self, why: str) -> NotGGUF:
        return NotGGUF(f"{self.path}: not a valid GGUF file: {why} (at byte {self.at})")

    def take(self, n: int) -> bytes:
        if n < 0 or n > self.size - self.at:
            raise self.fail(f"{n:,} bytes declared, {self.size - self.at:,} left in the file")
        chunk = self.file.read(n)
        self.at += n
        return chunk

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack("<Q", self.take(8))[0])

    def string(self) -> None:
        self.take(self.u64())

    def count(self, n: int, least: int, what: str) -> int:
        """`n` items of at least `least` bytes each must fit in what is left."""
        if n * least > self.size - self.at:
            raise self.fail(
                f"{what} of {n:,} declared, more than the {self.size - self.at:,} bytes left"
                " could hold"
            )
        return n

    def value(self, kind: int, depth: int = 0) -> None:
        if kind in FIXED:
            self.take(FIXED[kind])
        elif kind == STRING:
            self.string()
        elif kind == ARRAY:
            if depth >= MAX_DEPTH:
                raise self.fail("arrays nested too deep")
            inner = self.u32()
            if inner not in FIXED and inner not in (STRING, ARRAY):
                raise self.fail(f"unknown value type {inner}")
            n = self.count(self.u64(), FIXED.get(inner, 8), "an array")
            if inner in FIXED:
                self.take(n * FIXED[inner])
            else:
                for _ in range(n):
                    self.value(inner, depth + 1)
        else:
            raise self.fail(f"unknown value type {kind}")


def check_gguf(path: Path) -> None:
    """Raise NotGGUF, saying what and where, unless `path`'s header is well formed and every
    count in it fits the file."""
    header = _Header(path)
    try:
        if header.take(4) != MAGIC:
            raise header.fail("it does not start with GGUF")
        if (version := header.u32()) not in VERSIONS:
            raise header.fail(f"version {version}; readers know {', '.join(map(str, VERSIONS))}")
        tensors = header.u64()
        pairs = header.u64()
        header.count(pairs, 8 + 4 + 1, "metadata entries")
        header.count(tensors, 8 + 4 + 8 + 4 + 8, "tensors")
        for _ in range(pairs):
            header.string()
            header.value(header.u32())
        for _ in range(tensors):
            header.string()
            dims = header.u32()
            if not 1 <= dims <= MAX_DIMS:
                raise header.fail(f"a tensor of {dims} dimensions")
            header.take(8 * dims + 4 + 8)
    finally:
        header.file.close()
