"""`forge_api.atomic_file`: a file is replaced whole or left as it was."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from forge_api.atomic_file import replacing, write_text


def test_the_new_content_takes_the_name_in_one_step_and_private(tmp_path: Path) -> None:
    target = tmp_path / "spec.json"
    target.write_text("old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["spec.json"]


def test_a_failed_check_leaves_the_old_file_and_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("kept = true\n")
    with pytest.raises(ValueError, match="refused"), replacing(target) as partial:
        partial.write_text("half written")
        raise ValueError("refused by the check")
    assert target.read_text() == "kept = true\n"
    assert sorted(os.listdir(tmp_path)) == ["config.toml"]
