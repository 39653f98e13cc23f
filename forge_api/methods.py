"""Every method of the daemon's socket API with the models of its params and of its result: the
one table both ends are typed by. The daemon registers each handler under its `Method` (a
handler that returns another model does not type-check); a client's `ask(method, ...)` sends
params validated by the same model and hands back the result as the model, not a dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from forge_api.schema import (
    ConfigReloaded,
    DatasetsImportParams,
    DatasetsListParams,
    DatasetsListResult,
    DatasetsPreviewParams,
    DatasetsPreviewResult,
    EventsSubscribeParams,
    EventsSubscribeResult,
    EventsUnsubscribeParams,
    IdParams,
    ImportedDataset,
    Job,
    JobsListParams,
    JobsListResult,
    JobsLogsParams,
    JobsLogsResult,
    JobsMetricsParams,
    JobsMetricsResult,
    JobsSubmitParams,
    Mission,
    MissionApproveParams,
    MissionRejectParams,
    MissionRetryParams,
    MissionsListParams,
    MissionsListResult,
    ModelsDeployParams,
    ModelsListParams,
    ModelsListResult,
    ModelsRollbackParams,
    ModelsRollbackResult,
    NoParams,
    Ok,
    ScanResult,
    Source,
    SourcesAddParams,
    SourcesListResult,
    SystemHealth,
    SystemStatus,
)

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Method(Generic[P, R]):
    """A socket method: its `noun.verb` name, its params' model and its result's model."""

    name: str
    params: type[P]
    result: type[R]

    def reply(self, raw: Any) -> R:
        """A reply's `result` as the method's result model."""
        return self.result.model_validate(raw)


DATASETS_LIST = Method("datasets.list", DatasetsListParams, DatasetsListResult)
DATASETS_PREVIEW = Method("datasets.preview", DatasetsPreviewParams, DatasetsPreviewResult)
DATASETS_IMPORT = Method("datasets.import", DatasetsImportParams, ImportedDataset)
EVENTS_SUBSCRIBE = Method("events.subscribe", EventsSubscribeParams, EventsSubscribeResult)
EVENTS_UNSUBSCRIBE = Method("events.unsubscribe", EventsUnsubscribeParams, Ok)
JOBS_LIST = Method("jobs.list", JobsListParams, JobsListResult)
JOBS_GET = Method("jobs.get", IdParams, Job)
JOBS_SUBMIT = Method("jobs.submit", JobsSubmitParams, Job)
JOBS_CANCEL = Method("jobs.cancel", IdParams, Job)
JOBS_RESUME = Method("jobs.resume", IdParams, Job)
JOBS_LOGS = Method("jobs.logs", JobsLogsParams, JobsLogsResult)
JOBS_METRICS = Method("jobs.metrics", JobsMetricsParams, JobsMetricsResult)
MISSIONS_LIST = Method("missions.list", MissionsListParams, MissionsListResult)
MISSIONS_GET = Method("missions.get", IdParams, Mission)
MISSIONS_APPROVE = Method("missions.approve", MissionApproveParams, Mission)
MISSIONS_REJECT = Method("missions.reject", MissionRejectParams, Mission)
MISSIONS_DISMISS = Method("missions.dismiss", IdParams, Mission)
MISSIONS_RETRY = Method("missions.retry", MissionRetryParams, Mission)
MODELS_LIST = Method("models.list", ModelsListParams, ModelsListResult)
MODELS_DEPLOY = Method("models.deploy", ModelsDeployParams, Job)
MODELS_ROLLBACK = Method("models.rollback", ModelsRollbackParams, ModelsRollbackResult)
SOURCES_LIST = Method("sources.list", NoParams, SourcesListResult)
SOURCES_ADD = Method("sources.add", SourcesAddParams, Source)
SOURCES_SCAN = Method("sources.scan", IdParams, ScanResult)
SOURCES_REMOVE = Method("sources.remove", IdParams, Ok)
SYSTEM_STATUS = Method("system.status", NoParams, SystemStatus)
SYSTEM_HEALTH = Method("system.health", NoParams, SystemHealth)
SYSTEM_RELOAD_CONFIG = Method("system.reload_config", NoParams, ConfigReloaded)

METHODS: dict[str, Method[Any, Any]] = {
    m.name: m for m in globals().copy().values() if isinstance(m, Method)
}
"""Every method, by name."""
