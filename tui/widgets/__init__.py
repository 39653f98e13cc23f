"""Widgets of the TUI, one idea each."""
