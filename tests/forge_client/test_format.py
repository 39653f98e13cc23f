"""`forge_client.format`: how progress reads in the CLI and the TUI alike."""

from __future__ import annotations

import time

from forge_client.format import clock, params_lines, progress_text


def test_progress_gives_an_eta_only_while_time_is_left() -> None:
    assert progress_text({"stage": "train", "step": 1, "total": 4, "eta_s": 30}) == (
        "train 1/4 · ETA 30 s"
    )
    assert progress_text({"stage": "done", "step": 2, "total": 2, "eta_s": 0}) == "done 2/2"


def test_a_moment_reads_as_a_time_of_day_today_and_with_a_date_further_off() -> None:
    now = time.mktime((2026, 11, 24, 12, 0, 0, 0, 0, -1))
    assert clock(now + 3600, now) == "13:00"
    assert clock(now + 86400, now) == "Wed 12:00"  # 2026-11-25 is a Wednesday
    assert clock(now + 30 * 86400, now) == "2026-12-24 12:00"


def test_params_left_to_the_engine_read_as_what_it_chose() -> None:
    params = {"rank": 8, "batch_size": None, "learning_rate": None, "dataset": "/d/x.jsonl"}
    assert params_lines(params, None) == [
        "rank           8",
        "batch_size     auto",
        "learning_rate  auto",
        "dataset        /d/x.jsonl",
    ]
    chosen = {"chosen": {"batch_size": 4, "learning_rate": 0.0002}}
    assert params_lines(params, chosen)[1:3] == [
        "batch_size     auto: 4",
        "learning_rate  auto: 0.0002",
    ]
