"""sources.*: the git repositories the person asked the agent to watch."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from agent.safe_git import UnsafeRepository, check_owner
from forge_api import methods as M
from forge_api.protocol import INVALID_PARAMS
from forge_api.schema import (
    IdParams,
    NoParams,
    Ok,
    ScanResult,
    Source,
    SourcesAddParams,
    SourcesListResult,
)
from forged.context import Session
from forged.rpc import Registry, RpcError, invalid_state, lookup, not_found
from forged.source_scanner import SourceGone


def _bad_path(message: str, path: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message, {"param": "path", "value": path})


def _is_work_tree(path: Path) -> bool:
    from git import InvalidGitRepositoryError, NoSuchPathError, Repo

    try:
        return not Repo(path, expand_vars=False).bare  # `$NAME` in a folder name is literal
    except (InvalidGitRepositoryError, NoSuchPathError):
        return False


def register(reg: Registry[Session]) -> None:
    @reg.method(M.SOURCES_LIST)
    async def sources_list(p: NoParams, s: Session) -> SourcesListResult:
        """Every watched repository, with what its last scan found pending."""
        pending = s.services.scanner.pending
        return SourcesListResult(
            sources=[
                src.model_copy(update={"pending": pending.get(src.id)})
                for src in s.services.store.list_sources()
            ]
        )

    @reg.method(M.SOURCES_ADD)
    async def sources_add(p: SourcesAddParams, s: Session) -> Source:
        """Watch a git work tree (refused, with the reason, for anything else)."""
        path = Path(p.path).expanduser()
        if not path.is_absolute():
            raise _bad_path(f"path must be absolute: {p.path}", p.path)
        path = path.resolve()
        if not path.is_dir():
            raise _bad_path(f"no such folder: {path}", p.path)
        roots = [Path(r).expanduser().resolve() for r in s.services.config.agent.allowed_roots]
        if not any(path == root or root in path.parents for root in roots):
            allowed = ", ".join(map(str, roots))
            raise _bad_path(
                f"{path} is outside the allowed roots ({allowed}); add its folder to "
                "agent.allowed_roots in the config",
                p.path,
            )
        if not os.access(path, os.R_OK | os.X_OK):
            raise _bad_path(f"{path} is not readable by the daemon's user", p.path)
        if not await asyncio.to_thread(_is_work_tree, path):
            raise _bad_path(f"not a git work tree: {path}", p.path)
        try:
            await asyncio.to_thread(check_owner, path)
        except UnsafeRepository as exc:
            raise _bad_path(str(exc), p.path) from None
        existing = s.services.store.source_by_path(str(path))
        if existing is not None:
            raise invalid_state(f"{path} is already a source ({existing.id})", id=existing.id)
        config = {
            "include": p.include,
            "exclude": p.exclude,
            "builders": p.builders,
            "thresholds": p.thresholds.model_dump(exclude_none=True),
        }
        source = s.services.store.add_source(str(path), p.name or path.name, config)
        s.services.scanner.added(source)
        return source

    @reg.method(M.SOURCES_SCAN)
    async def sources_scan(p: IdParams, s: Session) -> ScanResult:
        """Look at a source now; the mission it proposed, if its new material was enough."""
        source = lookup(s.services.store.get_source, "source", p.id)
        try:
            return ScanResult(mission=await s.services.scanner.scan(source.id))
        except SourceGone as exc:
            raise invalid_state(f"source {source.id}: {exc}", param="id") from None

    @reg.method(M.SOURCES_REMOVE)
    async def sources_remove(p: IdParams, s: Session) -> Ok:
        """Stop watching a repository; its datasets and adapters stay."""
        source = lookup(s.services.store.get_source, "source", p.id)
        event = s.services.store.remove_source(source.id)
        if event is None:
            raise not_found("source", p.id)
        s.services.scanner.removed(source.id)
        return Ok()
