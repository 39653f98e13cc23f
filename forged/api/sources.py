"""sources.*: the git repositories the person asked the agent to watch."""

from __future__ import annotations

from pathlib import Path

from forged.context import Session
from forged.rpc import INVALID_PARAMS, Registry, RpcError, invalid_state, not_found
from forged.schema import IdParams, NoParams, Ok, Source, SourcesAddParams, SourcesListResult


def _bad_path(message: str, path: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message, {"param": "path", "value": path})


def register(reg: Registry[Session]) -> None:
    @reg.method("sources.list", NoParams)
    async def sources_list(p: NoParams, s: Session) -> SourcesListResult:
        """Every watched repository."""
        return SourcesListResult(sources=s.services.store.list_sources())

    @reg.method("sources.add", SourcesAddParams)
    async def sources_add(p: SourcesAddParams, s: Session) -> Source:
        """Watch a git work tree (refused, with the reason, for anything else)."""
        path = Path(p.path).expanduser()
        if not path.is_absolute():
            raise _bad_path(f"path must be absolute: {p.path}", p.path)
        path = path.resolve()
        if not path.is_dir():
            raise _bad_path(f"no such folder: {path}", p.path)
        if not (path / ".git").exists():
            raise _bad_path(f"not a git work tree (no .git): {path}", p.path)
        existing = s.services.store.source_by_path(str(path))
        if existing is not None:
            raise invalid_state(f"{path} is already a source ({existing.id})", id=existing.id)
        source, event = s.services.store.add_source(
            str(path), p.name or path.name, {"include": p.include, "exclude": p.exclude}
        )
        s.services.bus.publish(event)
        return source

    @reg.method("sources.remove", IdParams)
    async def sources_remove(p: IdParams, s: Session) -> Ok:
        """Stop watching a repository; its datasets and adapters stay."""
        event = s.services.store.remove_source(p.id)
        if event is None:
            raise not_found("source", p.id)
        s.services.bus.publish(event)
        return Ok()
