"""models.*: base models, adapters, merged models and Ollama deployments in the registry."""

from __future__ import annotations

from forged.context import Session
from forged.rpc import NOT_FOUND, UNSUPPORTED, Registry, RpcError, lookup
from forged.schema import (
    ModelsDeployParams,
    ModelsListParams,
    ModelsListResult,
    ModelsRollbackParams,
)

NO_DEPLOY = "deploying to Ollama is not part of this version of forge yet"


def register(reg: Registry[Session]) -> None:
    @reg.method("models.list", ModelsListParams)
    async def models_list(p: ModelsListParams, s: Session) -> ModelsListResult:
        """Every model the registry holds, newest first, optionally of some kinds."""
        return ModelsListResult(models=s.services.store.list_models(p.kind))

    @reg.method("models.deploy", ModelsDeployParams)
    async def models_deploy(p: ModelsDeployParams, s: Session) -> ModelsListResult:
        """Deploy an adapter or merged model to Ollama."""
        lookup(s.services.store.get_model, "model", p.id)
        raise RpcError(UNSUPPORTED, NO_DEPLOY, {"method": "models.deploy"})

    @reg.method("models.rollback", ModelsRollbackParams)
    async def models_rollback(p: ModelsRollbackParams, s: Session) -> ModelsListResult:
        """Point a source's Ollama alias back at its previous tag."""
        try:
            s.services.store.get_source(p.source_id)
        except KeyError:
            raise RpcError(
                NOT_FOUND,
                f"no source {p.source_id!r}",
                {"param": "source_id", "value": p.source_id},
            ) from None
        raise RpcError(UNSUPPORTED, NO_DEPLOY, {"method": "models.rollback"})
