"""`forge_client.format`: how progress reads in the CLI and the TUI alike."""

from __future__ import annotations

from forge_client.format import progress_text


def test_progress_gives_an_eta_only_while_time_is_left() -> None:
    assert progress_text({"stage": "train", "step": 1, "total": 4, "eta_s": 30}) == (
        "train 1/4 · ETA 30 s"
    )
    assert progress_text({"stage": "done", "step": 2, "total": 2, "eta_s": 0}) == "done 2/2"
