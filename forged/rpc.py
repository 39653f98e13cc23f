"""JSON-RPC 2.0: the error codes, the method registry and the dispatch of one message.

Transport-free: `forged.server` feeds it decoded lines and writes back what it returns, so the
rules of the protocol (what is a request, which error for what) live in this one place.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from forge_api.methods import Method as ApiMethod
from forge_api.mission_flow import StageTransitionError
from forge_api.protocol import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    INVALID_STATE,
    MAX_BATCH,
    MAX_REPLY_BYTES,
    METHOD_NOT_FOUND,
    NOT_FOUND,
    PARSE_ERROR,
    REPLY_TOO_LARGE,
)
from forged import json_limits
from forged.store_base import AmbiguousRef

log = logging.getLogger(__name__)


class RpcError(Exception):
    """An error the client gets back as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def not_found(what: str, ref: str) -> RpcError:
    return RpcError(NOT_FOUND, f"no {what} {ref!r}", {"param": "id", "value": ref})


T = TypeVar("T")


def lookup(get: Callable[[str], T], what: str, ref: str, param: str = "id") -> T:
    """`get(ref)` from the store: its KeyError turned into -32001 naming what was not found,
    an ambiguous short id into -32602 listing the ids it starts."""
    try:
        return get(ref)
    except KeyError:
        raise not_found(what, ref) from None
    except AmbiguousRef as exc:
        raise RpcError(
            INVALID_PARAMS,
            f"{what} {exc}; give more of it",
            {"param": param, "value": ref, "candidates": exc.candidates},
        ) from None


def invalid_state(message: str, **data: Any) -> RpcError:
    return RpcError(INVALID_STATE, message, data or None)


P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
C = TypeVar("C")
Handler = Callable[[P, C], Awaitable[R]]


@dataclass(frozen=True)
class Method(Generic[P, C]):
    name: str
    params: type[P]
    handler: Handler[P, C, Any]


class Registry(Generic[C]):
    """The daemon's methods, by `noun.verb` name, each handled as `forge_api.methods` types it:
    its params' model in, its result's model out."""

    def __init__(self) -> None:
        self.methods: dict[str, Method[Any, C]] = {}

    def method(self, api: ApiMethod[P, R]) -> Callable[[Handler[P, C, R]], Handler[P, C, R]]:
        def register(fn: Handler[P, C, R]) -> Handler[P, C, R]:
            if api.name in self.methods:
                raise ValueError(f"method {api.name} registered twice")
            self.methods[api.name] = Method(api.name, api.params, fn)
            return fn

        return register

    async def handle_line(self, line: bytes, ctx: C) -> bytes | None:
        """One line in, the encoded reply out (None when nothing is to be sent back)."""
        try:
            message = json.loads(line)
        except RecursionError:
            return encode(
                error_reply(None, RpcError(PARSE_ERROR, "parse error: nested too deeply"))
            )
        except (UnicodeDecodeError, ValueError) as exc:
            # ValueError: bad JSON, or an integer of more digits than Python converts.
            return encode(error_reply(None, RpcError(PARSE_ERROR, f"parse error: {exc}")))
        if isinstance(message, list):
            if not message:
                return encode(error_reply(None, RpcError(INVALID_REQUEST, "empty batch")))
            if len(message) > MAX_BATCH:
                return encode(
                    error_reply(
                        None,
                        RpcError(
                            INVALID_REQUEST,
                            f"a batch holds at most {MAX_BATCH} requests; this one has "
                            f"{len(message)}: send it in parts",
                        ),
                    )
                )
            return await self._handle_batch(message, ctx)
        reply = await self.handle(message, ctx)
        return None if reply is None else _capped(reply, MAX_REPLY_BYTES)

    async def _handle_batch(self, messages: list[Any], ctx: C) -> bytes | None:
        """A batch's replies in one array, within MAX_REPLY_BYTES in all: a reply that would
        pass it is replaced by an error saying so."""
        parts: list[bytes] = []
        room = MAX_REPLY_BYTES
        for message in messages:
            reply = await self.handle(message, ctx)
            if reply is not None:
                part = _capped(reply, room).rstrip(b"\n")
                room -= len(part) + 1
                parts.append(part)
        return b"[" + b",".join(parts) + b"]\n" if parts else None

    async def handle(self, message: Any, ctx: C) -> dict[str, Any] | None:
        """Dispatch one decoded message; None for a notification (a request without id)."""
        if not isinstance(message, dict):
            return error_reply(None, RpcError(INVALID_REQUEST, "a request must be a JSON object"))
        has_id = "id" in message
        msg_id = message.get("id")
        if (
            isinstance(msg_id, bool)
            or not (msg_id is None or isinstance(msg_id, str | int))
            or json_limits.problem(msg_id, "id")
        ):
            return error_reply(
                None,
                RpcError(
                    INVALID_REQUEST,
                    "id must be a string of Unicode text, an integer within 2^63, or null",
                ),
            )
        problem = _request_problem(message)
        if problem:
            return error_reply(msg_id, RpcError(INVALID_REQUEST, problem))
        name = message["method"]
        method = self.methods.get(name)
        if method is None:
            reply = error_reply(
                msg_id,
                RpcError(
                    METHOD_NOT_FOUND,
                    f"no method {name!r}",
                    {"methods": sorted(self.methods)},
                ),
            )
            return reply if has_id else None
        raw = message.get("params", {})
        if isinstance(raw, list):
            reply = error_reply(
                msg_id, RpcError(INVALID_PARAMS, "params must be an object (by name)")
            )
            return reply if has_id else None
        bad = json_limits.problem(raw, "")
        if bad is not None:
            where, what = bad
            reply = error_reply(
                msg_id,
                RpcError(
                    INVALID_PARAMS,
                    f"invalid params: {where or 'params'}: {what}",
                    [{"param": where or "params", "error": what}],
                ),
            )
            return reply if has_id else None
        try:
            params = method.params.model_validate(raw)
        except ValidationError as exc:
            reply = error_reply(msg_id, params_error(exc))
            return reply if has_id else None
        try:
            result = await method.handler(params, ctx)
        except RpcError as exc:
            reply = error_reply(msg_id, exc)
        except StageTransitionError as exc:  # a mission moved meanwhile (two clients at once)
            reply = error_reply(msg_id, invalid_state(str(exc)))
        except Exception as exc:
            log.exception("method %s failed", name)
            reply = error_reply(msg_id, RpcError(INTERNAL_ERROR, f"internal error: {exc}"))
        else:
            body = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
            reply = {"jsonrpc": "2.0", "id": msg_id, "result": body}
        return reply if has_id else None


def params_error(exc: ValidationError, prefix: str = "") -> RpcError:
    """-32602 with each bad param named by its dotted path, what is wrong and what was sent.

    `prefix` names where the validated object sits (e.g. "params" for a job's own params).
    """
    problems = []
    for err in exc.errors():
        where = (
            ".".join(
                [prefix, *(str(p) for p in err["loc"])] if prefix else [str(p) for p in err["loc"]]
            )
            or "params"
        )
        msg = "unknown param" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append({"param": where, "error": msg, "got": _short(err.get("input"))})
    summary = "; ".join(f"{p['param']}: {p['error']}" for p in problems)
    return RpcError(INVALID_PARAMS, f"invalid params: {summary}", problems)


def _short(value: Any) -> Any:
    text = json.dumps(value, default=str)
    return value if len(text) <= 200 else text[:200] + "…"


def _request_problem(message: dict[str, Any]) -> str | None:
    if message.get("jsonrpc") != "2.0":
        return 'jsonrpc must be "2.0"'
    if not isinstance(message.get("method"), str):
        return "method must be a string"
    if "params" in message and not isinstance(message["params"], dict | list):
        return "params must be an object"
    return None


def error_reply(msg_id: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": err.to_json()}


def encode(obj: Any) -> bytes:
    return json_limits.dumps(obj).encode() + b"\n"


def _capped(reply: dict[str, Any], limit: int) -> bytes:
    """The encoded reply, or an error in its place when it would be over `limit` bytes (what a
    client is promised it will never have to read in one line)."""
    data = encode(reply)
    if len(data) <= limit:
        return data
    too_large = RpcError(
        REPLY_TOO_LARGE,
        f"the reply would be {len(data) / 2**20:.1f} MiB, over the "
        f"{MAX_REPLY_BYTES // 2**20} MiB a reply may hold: ask for less at a time "
        "(limit/after_seq/offset), or send fewer requests in one batch",
    )
    return encode(error_reply(reply.get("id"), too_large))


def encode_notification(method: str, params: dict[str, Any]) -> bytes:
    return encode({"jsonrpc": "2.0", "method": method, "params": params})
