"""The user's guide stays true to the code: its config block is the real defaults."""

from __future__ import annotations

from pathlib import Path

from forged.config import default_config_text
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
