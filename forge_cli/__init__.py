"""forge_cli: the `forge` command, one module per noun, plus `make demo` and the service files.

Built on `forge_client` (the socket and the ssh bridge) and `tui` (for `forge tui`); the daemon
package never imports it. See docs/architecture.md for the layers.
"""
