"""tui: the Textual terminal UI, `forge tui`, talking to the daemon only through the socket
client of `forge_client`."""
