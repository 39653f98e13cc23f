"""events.subscribe / events.unsubscribe: the stream of `event` notifications."""

from __future__ import annotations

from forge_api import methods as M
from forge_api.schema import (
    Event,
    EventsSubscribeParams,
    EventsSubscribeResult,
    EventsUnsubscribeParams,
    Ok,
)
from forged.context import Session
from forged.rpc import Registry, encode_notification, not_found


def register(reg: Registry[Session]) -> None:
    @reg.method(M.EVENTS_SUBSCRIBE)
    async def events_subscribe(p: EventsSubscribeParams, s: Session) -> EventsSubscribeResult:
        """Stream `event` notifications: stored ones after `since`, then live ones."""
        conn = s.conn
        sub_id = 0

        async def send(event: Event) -> None:
            params = event.model_dump(mode="json") | {"subscription": sub_id}
            await conn.send(encode_notification("event", params))

        sub, last = s.services.bus.subscribe(
            since=p.since, types=p.types, job_id=p.job_id, on_overflow=conn.abort
        )
        sub_id = sub.id
        conn.subscriptions.add(sub.id)
        # The reply goes out first; replay and live events follow it.
        conn.after_reply.append(lambda: s.services.bus.start(sub, send))
        return EventsSubscribeResult(subscription=sub.id, last_seq=last)

    @reg.method(M.EVENTS_UNSUBSCRIBE)
    async def events_unsubscribe(p: EventsUnsubscribeParams, s: Session) -> Ok:
        """Stop one subscription of this connection."""
        if p.subscription not in s.conn.subscriptions:
            raise not_found("subscription", str(p.subscription))
        s.conn.subscriptions.discard(p.subscription)
        s.services.bus.unsubscribe(p.subscription)
        return Ok()
