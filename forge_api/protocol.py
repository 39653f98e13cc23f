"""The socket protocol's numbers: JSON-RPC error codes and the limits both ends hold to.

Plain constants (no pydantic) so the client side can import them and still start fast; the
daemon's `forged.rpc` enforces them, `forge_client.client` reads replies up to them.
"""

from __future__ import annotations

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Application codes (the -32000..-32099 range the spec reserves for servers).
NOT_FOUND = -32001
INVALID_STATE = -32002
UNSUPPORTED = -32003
REPLY_TOO_LARGE = -32004

MAX_MESSAGE_BYTES = 1024 * 1024
"""The most one request line may hold."""
MAX_BATCH = 100
"""Requests in one batch: each is answered in turn, so a batch is bounded work."""
MAX_REPLY_BYTES = 32 * 1024 * 1024
"""The most a reply may hold, on the wire, as one line: the daemon answers larger results with
an error asking for less (pages), and clients read any line up to this size."""
