"""The app's screens behind the number keys, in order: (mode name, short label, screen class).

Kept apart from the app so the connection bar and the app read the same list. Classes are
named by import path and loaded by the app, so this module stays free of screen imports.
"""

from __future__ import annotations

SCREENS: tuple[tuple[str, str, str], ...] = (
    ("dashboard", "Dash", "tui.screens.dashboard:DashboardScreen"),
    ("jobs", "Jobs", "tui.screens.jobs:JobsScreen"),
    ("missions", "Missions", "tui.screens.missions:MissionsScreen"),
    ("datasets", "Data", "tui.screens.datasets:DatasetsScreen"),
    ("sources", "Sources", "tui.screens.sources:SourcesScreen"),
    ("models", "Models", "tui.screens.models:ModelsScreen"),
    ("playground", "Play", "tui.screens.playground:PlaygroundScreen"),
    ("settings", "Settings", "tui.screens.settings:SettingsScreen"),
)
