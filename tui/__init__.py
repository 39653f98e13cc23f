"""tui: the Textual terminal UI, `forge tui`, talking to the daemon only through forged.client.
It arrives with the terminal-UI issue."""
