"""The event bus: every change is stored with an increasing `seq`, then fanned out to subscribers.

The store calls `publish` itself after each commit, with the events that transaction stored, in
seq order: no other code publishes, so an event is never announced twice, out of order, or
without its change.

A subscriber gets a bounded queue. Publishing never waits: when a subscriber's queue is full it
is dropped (its connection closed) so one slow client can never stall the daemon. A client that
reconnects with `since=seq` is replayed everything after that seq from the store first, then the
live stream, with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence

from forge_api.schema import Event
from forged.store import Store

log = logging.getLogger(__name__)

REPLAY_PAGE = 500


class Subscription:
    """One `events.subscribe` of one connection, with its filter and its bounded queue."""

    def __init__(
        self,
        sid: int,
        types: Sequence[str] | None,
        job_id: str | None,
        maxsize: int,
        on_overflow: Callable[[], None],
    ) -> None:
        self.id = sid
        self.types = list(types) if types else None
        self.job_id = job_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.on_overflow = on_overflow
        self.task: asyncio.Task[None] | None = None
        self.cursor = 0

    def matches(self, event: Event) -> bool:
        if self.job_id is not None and event.job_id != self.job_id:
            return False
        if self.types is None:
            return True
        return any(
            event.type.startswith(t) if t.endswith(".") else event.type == t for t in self.types
        )


LIFECYCLE = frozenset(
    {
        "job.status",
        "mission.proposed",
        "mission.stage",
        "source.added",
        "source.removed",
        "dataset.added",
        "model.added",
    }
)
"""Event types that change what exists or where it stands: each is a line in the daemon's log."""


def lifecycle_line(event: Event) -> str:
    """`job job-… running (pid 123, attempt 1)`, `mission msn-… training (job job-…)`, …"""
    data = dict(event.data)
    subject = data.pop("id", None) or event.job_id or ""
    if event.job_id and event.job_id != subject:
        data = {"job": event.job_id} | data
    what = data.pop("status", None) or data.pop("stage", None) or event.type.split(".")[1]
    details = ", ".join(
        f"{k} {v}"
        for k, v in data.items()
        if v not in (None, "") and not isinstance(v, dict | list)
    )
    noun = event.type.split(".")[0]
    return f"{noun} {subject} {what}" + (f" ({details})" if details else "")


class EventBus:
    """Stores events and delivers them to the subscriptions that match."""

    def __init__(self, store: Store, queue_size: int) -> None:
        self.store = store
        self.queue_size = queue_size
        self.subscriptions: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        # The store hands over what each transaction stored, once it is committed: no change is
        # announced that was rolled back, and none is stored without being announced.
        store.on_commit = self.publish

    def publish(self, *events: Event) -> None:
        """Fan committed events out to the subscriptions that want them (the store calls this),
        and write each lifecycle change in the daemon's log (for `journalctl --user -u forged`)."""
        for event in events:
            if event.type in LIFECYCLE:
                log.info("%s", lifecycle_line(event))
            for sub in list(self.subscriptions.values()):
                if not sub.matches(event):
                    continue
                try:
                    sub.queue.put_nowait(event)
                except asyncio.QueueFull:
                    log.warning(
                        "subscription %d fell %d events behind; dropped", sub.id, sub.queue.qsize()
                    )
                    self.unsubscribe(sub.id)
                    sub.on_overflow()

    def subscribe(
        self,
        *,
        since: int | None,
        types: Sequence[str] | None,
        job_id: str | None,
        on_overflow: Callable[[], None],
    ) -> tuple[Subscription, int]:
        """Register now, so live events queue up from this moment; `start` sends them.

        Returns the subscription and the last stored seq at this moment.
        """
        sub = Subscription(next(self._ids), types, job_id, self.queue_size, on_overflow)
        self.subscriptions[sub.id] = sub
        last = self.store.last_seq()
        sub.cursor = last if since is None else since
        return sub, last

    def start(self, sub: Subscription, send: Callable[[Event], Awaitable[None]]) -> None:
        """Replay what is stored after the subscription's cursor, then forward live events."""
        if sub.id in self.subscriptions:
            sub.task = asyncio.create_task(self._forward(sub, send), name=f"sub-{sub.id}")

    def unsubscribe(self, sid: int) -> bool:
        sub = self.subscriptions.pop(sid, None)
        if sub is None:
            return False
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()
        return True

    async def _forward(self, sub: Subscription, send: Callable[[Event], Awaitable[None]]) -> None:
        cursor = sub.cursor
        try:
            while True:
                page = self.store.events_after(
                    cursor, limit=REPLAY_PAGE, job_id=sub.job_id, types=sub.types
                )
                for event in page:
                    await send(event)
                    cursor = event.seq
                if len(page) < REPLAY_PAGE:
                    break
            while True:
                event = await sub.queue.get()
                if event.seq > cursor:
                    await send(event)
                    cursor = event.seq
        except (ConnectionError, asyncio.CancelledError):
            pass
        except Exception:
            # Never a silent stall: the client is cut off, reconnects and is replayed from
            # its last seq; what went wrong is in the log.
            log.exception("subscription %d: forwarding failed at seq %d; dropped", sub.id, cursor)
            sub.on_overflow()
        finally:
            self.subscriptions.pop(sub.id, None)
