"""The daemon's methods, one module per noun; `build_registry` puts them all together."""

from __future__ import annotations

from forged.api import datasets, events, jobs, missions, models, sources, system
from forged.context import Session
from forged.rpc import Registry


def build_registry() -> Registry[Session]:
    registry: Registry[Session] = Registry()
    for module in (jobs, missions, sources, datasets, models, system, events):
        module.register(registry)
    return registry
