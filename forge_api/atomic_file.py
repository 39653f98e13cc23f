"""Writing a file so that a reader sees the old one or the new one, never half of either.

A crash, a full disk or a failed check while writing leaves the file as it was: the new content
goes to a temporary file beside it, is flushed to disk, and only then takes its name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write the new content to. When the block ends without
    an error the temporary file replaces `path` in one step; on an error it is removed, `path`
    is untouched and the error goes on (so a check of the new file inside the block, such as
    parsing a config, can refuse it)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """`path.write_text(text)`, all or nothing."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
