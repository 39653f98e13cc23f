"""`forge mcp`: the forge as an MCP server for coding agents (`forge_cli.mcp_server`), added to
the parser here without loading the MCP SDK, so every other command starts as fast as before."""

from __future__ import annotations

import sys

from forge_cli.context import EXIT_ERROR, AddCommand, Cli, Subparsers

INSTALL = "forge mcp needs the MCP SDK: pip install 'ai-forge[mcp]'"


def cmd_mcp(cli: Cli) -> int:
    try:
        from forge_cli import mcp_server
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("mcp", "mcp_types", "uvicorn", "httpx2"):
            raise
        print(INSTALL, file=sys.stderr)
        return EXIT_ERROR
    socket = cli.paths.socket_file
    if cli.args.http:
        mcp_server.serve_http(socket, cli.args.port)
    else:
        mcp_server.serve_stdio(socket)
    return 0


def register(sub: Subparsers, add: AddCommand) -> None:
    """`forge mcp`, under `forge`."""
    p = sub.add_parser(
        "mcp",
        help="serve coding agents over the Model Context Protocol (stdio; --http for streamable"
        " HTTP on 127.0.0.1 with a token)",
    )
    p.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    p.add_argument("--port", type=int, default=8766, help="with --http (default: 8766; 0: any)")
    p.set_defaults(fn=cmd_mcp, json=False)
