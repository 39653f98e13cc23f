"""The TUI's screens: one module per screen, all built on `base.ForgeScreen`."""
