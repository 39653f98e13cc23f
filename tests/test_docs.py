"""The user's guide stays true to the code: its config block is the real defaults."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

from forge_api.config import default_config_text
from forged.rpc import Registry

ROOT = Path(__file__).resolve().parent.parent


def test_guide_lists_every_config_key_at_its_default() -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    assert default_config_text().strip() in guide


def test_guide_lists_every_method() -> None:
    from forged.api import build_registry

    registry: Registry[object] = build_registry()  # type: ignore[assignment]
    guide = (ROOT / "docs" / "guide.md").read_text()
    missing = [name for name in registry.methods if f"`{name}`" not in guide]
    assert not missing


def test_guide_shows_every_tui_screen() -> None:
    from tui.modes import MODE_LABELS

    guide = (ROOT / "docs" / "guide.md").read_text()
    shots = ROOT / "docs" / "screenshots"
    for mode, _ in MODE_LABELS:
        assert f"screenshots/{mode}.svg" in guide, mode
        assert (shots / f"{mode}.svg").stat().st_size > 1000, mode
    for svg in shots.glob("*.svg"):
        ElementTree.parse(svg)  # well-formed: no control character leaked from the screen
    for extra in ("job-detail-log", "job-detail-chart", "new-job"):
        assert f"screenshots/{extra}.svg" in guide and (shots / f"{extra}.svg").exists()


def test_guide_describes_every_job_kind_as_the_table_says() -> None:
    """Each kind has its row in the guide, says it resumes exactly when the table says so, and
    its engine module has the `run` the engine calls."""
    import importlib

    from forge_api.jobs import KINDS

    guide = (ROOT / "docs" / "guide.md").read_text()
    for name, kind in KINDS.items():
        row = next((line for line in guide.splitlines() if line.startswith(f"| `{name}` |")), "")
        assert row, f"no row for {name} in the guide's job kinds table"
        says_resumes = row.rstrip(" |").split("|")[-1].strip().startswith("yes")
        assert says_resumes == kind.resumable, row
        assert callable(importlib.import_module(kind.runs).run), kind.runs


def test_guide_lists_every_event_type_the_daemon_writes() -> None:
    """Every event type the store, the runner or a job's output writes is in the guide's list."""
    import re

    guide = (ROOT / "docs" / "guide.md").read_text()
    events = guide[guide.index("**Events.**") :].split("\n\n")[0]
    written: set[str] = set()
    for module in ("store.py", "store_jobs.py", "runner.py", "job_output.py"):
        text = (ROOT / "forged" / module).read_text()
        written |= set(re.findall(r'"((?:job|mission|model|source|dataset)\.[a-z_]+)"', text))
    assert len(written) >= 14, written
    assert not [t for t in sorted(written) if f"`{t}`" not in events]


def test_the_guides_deploy_path_table_is_the_rule_the_code_applies() -> None:
    """Each row of "Which path a deploy takes" is what `deploy_mode` decides for it."""
    from forge_api.deploy_mode import deploy_mode

    guide = (ROOT / "docs" / "guide.md").read_text()
    table = guide[guide.index("| adapter method |") :].split("\n\n")[0].splitlines()[2:]
    assert len(table) == 5
    for row in table:
        method, named, path, _why = (cell.strip() for cell in row.strip("|").split("|"))
        base = "llama3.2:1b" if named == "yes" else None
        mode, _ = deploy_mode("auto", merged=False, ollama_base=base, dora=method == "DoRA")
        assert mode == path, row
