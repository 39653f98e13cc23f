"""models.*: the registry, deploying to Ollama, and rolling a source's alias back."""

from __future__ import annotations

from typing import Any

from forge_api import methods as M
from forge_api.protocol import INVALID_PARAMS
from forge_api.schema import (
    Job,
    ModelsDeployParams,
    ModelsListParams,
    ModelsListResult,
    ModelsRollbackParams,
    ModelsRollbackResult,
)
from forged.context import Session
from forged.registry import RegistryError, source_alias
from forged.rpc import Registry, RpcError, invalid_state, lookup


def bad_param(name: str, why: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"params.{name}: {why}", {"param": name})


def register(reg: Registry[Session]) -> None:
    @reg.method(M.MODELS_LIST)
    async def models_list(p: ModelsListParams, s: Session) -> ModelsListResult:
        """Every model, newest first: base models on disk, adapters with their eval metrics and
        origin, merged models, and Ollama tags with what they were built from."""
        return ModelsListResult(models=await s.services.models.listing(p.kind))

    @reg.method(M.MODELS_DEPLOY)
    async def models_deploy(p: ModelsDeployParams, s: Session) -> Job:
        """Queue a deploy job that makes an adapter or merged model an Ollama tag."""
        model = lookup(s.services.store.get_model, "model", p.id)
        try:
            params: dict[str, Any] = s.services.models.plan_deploy(model, p.tag)
        except RegistryError as exc:
            raise invalid_state(str(exc), id=p.id) from None
        if p.mode == "adapter" and model.kind == "merged":
            raise bad_param("mode", "a merged model is uploaded whole, not as an adapter")
        if p.mode:
            params["mode"] = p.mode
        if (unreachable := await s.services.models.reachable()) is not None:
            raise invalid_state(f"not deployed: {unreachable}", id=p.id)
        return s.services.submitter.submit("deploy", params, f"deploy {params['tag']}")

    @reg.method(M.MODELS_ROLLBACK)
    async def models_rollback(p: ModelsRollbackParams, s: Session) -> ModelsRollbackResult:
        """Point a source's alias (or any alias) back at the tag deployed before its current."""
        if (p.source_id is None) == (p.alias is None):
            raise bad_param("source_id", "give exactly one of source_id and alias")
        alias = p.alias
        if p.source_id is not None:
            source = lookup(s.services.store.get_source, "source", p.source_id)
            alias = source_alias(source.name)
        assert alias is not None
        try:
            model = await s.services.models.rollback(alias)
        except RegistryError as exc:
            raise invalid_state(str(exc), alias=alias) from None
        return ModelsRollbackResult(alias=alias, model=model)
