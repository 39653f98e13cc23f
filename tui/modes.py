"""The app's screens behind the number keys, in order: (mode name, short label).

Kept apart from the app, with no screen in it, so the connection bar (inside every screen) can
name the modes without importing the screens; the app maps each mode to its screen class.
"""

from __future__ import annotations

MODE_LABELS: tuple[tuple[str, str], ...] = (
    ("dashboard", "Dash"),
    ("jobs", "Jobs"),
    ("missions", "Missions"),
    ("datasets", "Data"),
    ("sources", "Sources"),
    ("models", "Models"),
    ("playground", "Play"),
    ("settings", "Settings"),
)
