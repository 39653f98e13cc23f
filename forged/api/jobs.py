"""jobs.*: list, get, submit, cancel, logs and metrics of jobs."""

from __future__ import annotations

from forge_api import methods as M
from forge_api.jobs import resumable
from forge_api.names import TERMINAL_JOB_STATUSES
from forge_api.schema import (
    IdParams,
    Job,
    JobsListParams,
    JobsListResult,
    JobsLogsParams,
    JobsLogsResult,
    JobsMetricsParams,
    JobsMetricsResult,
    JobsSubmitParams,
    LogLine,
)
from forged.context import Session
from forged.rpc import Registry, invalid_state, not_found

LOG_PAGE_BYTES = 4 * 1024 * 1024
"""Text in one jobs.logs reply: far below the reply cap even with every line escaped."""


def resolve_job(s: Session, ref: str) -> str:
    """A job id from a full id or a unique prefix of one; -32001 otherwise."""
    job_id = s.services.store.resolve_job_id(ref)
    if job_id is None:
        raise not_found("job", ref)
    return job_id


def register(reg: Registry[Session]) -> None:
    @reg.method(M.JOBS_LIST)
    async def jobs_list(p: JobsListParams, s: Session) -> JobsListResult:
        """Jobs, newest first, filtered by status, kind and a text in the name or id."""
        jobs, total = s.services.store.list_jobs(
            status=p.status, kind=p.kind, text=p.text, limit=p.limit, offset=p.offset
        )
        return JobsListResult(jobs=s.services.runner.with_stall(jobs), total=total)

    @reg.method(M.JOBS_GET)
    async def jobs_get(p: IdParams, s: Session) -> Job:
        """One job by id (or a unique prefix of its id)."""
        return s.services.runner.with_stall([s.services.store.get_job(resolve_job(s, p.id))])[0]

    @reg.method(M.JOBS_SUBMIT)
    async def jobs_submit(p: JobsSubmitParams, s: Session) -> Job:
        """Queue a job; every check at submit (`forged.job_submit`) before anything is stored."""
        return s.services.submitter.submit(p.kind, p.params, p.name)

    @reg.method(M.JOBS_CANCEL)
    async def jobs_cancel(p: IdParams, s: Session) -> Job:
        """Cancel a queued job now, or a running one by SIGTERM (SIGKILL after the grace period)."""
        job_id = resolve_job(s, p.id)
        job = s.services.store.get_job(job_id)
        if job.status in TERMINAL_JOB_STATUSES:
            raise invalid_state(f"job {job_id} is already {job.status}", status=job.status)
        return await s.services.runner.cancel(job_id)

    @reg.method(M.JOBS_RESUME)
    async def jobs_resume(p: IdParams, s: Session) -> Job:
        """Queue a cancelled or failed job again, to continue from its last checkpoint."""
        job_id = resolve_job(s, p.id)
        job = s.services.store.get_job(job_id)
        if job.status not in ("cancelled", "failed"):
            raise invalid_state(
                f"job {job_id} is {job.status}; only a cancelled or failed job can be resumed",
                status=job.status,
            )
        if not resumable(job.kind) or not job.checkpoint:
            raise invalid_state(
                f"job {job_id} has no checkpoint to resume from; submit it again", kind=job.kind
            )
        return s.services.runner.resume(job_id)

    @reg.method(M.JOBS_LOGS)
    async def jobs_logs(p: JobsLogsParams, s: Session) -> JobsLogsResult:
        """Stored log lines; follow new ones with events.subscribe(job_id, types=["job.log"])."""
        job_id = resolve_job(s, p.id)
        # One more than asked, to tell whether more follow; and no more text than a page holds.
        lines = s.services.store.log_lines(
            job_id, after_seq=p.after_seq, tail=p.tail, limit=p.limit + 1
        )
        more = p.tail is None and len(lines) > p.limit
        lines = lines[-p.limit :] if p.tail is not None else lines[: p.limit]
        kept = _within(lines, LOG_PAGE_BYTES, from_end=p.tail is not None)
        more = more or (p.tail is None and len(kept) < len(lines))
        last = kept[-1].seq if kept else p.after_seq
        return JobsLogsResult(lines=kept, last_seq=last, more=more)

    @reg.method(M.JOBS_METRICS)
    async def jobs_metrics(p: JobsMetricsParams, s: Session) -> JobsMetricsResult:
        """Every metric a job reported, by step (loss, lr, eval loss, ...)."""
        job_id = resolve_job(s, p.id)
        return JobsMetricsResult(metrics=s.services.store.metrics(job_id, p.names))


def _within(lines: list[LogLine], budget: int, *, from_end: bool) -> list[LogLine]:
    """As many lines as fit `budget` characters, from the start (a page) or the end (a tail)."""
    ordered = reversed(lines) if from_end else iter(lines)
    kept: list[LogLine] = []
    for line in ordered:
        budget -= len(line.line) + 64  # the seq, the time stamp and the JSON around them
        if budget < 0 and kept:
            break
        kept.append(line)
    return kept[::-1] if from_end else kept
