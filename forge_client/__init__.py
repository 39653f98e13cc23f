"""forge_client: what a program needs to talk to a daemon, with no UI of its own.

The socket client (`client`), the ssh bridge to a daemon on another machine (`remote`), starting
a daemon in the background (`launch`), `KEY=VALUE` settings as typed (`kv`) and how times, sizes
and progress read (`format`). The CLI (`forge_cli`) and the TUI (`tui`) are built on it; the
daemon (`forged`) never imports it.
"""
