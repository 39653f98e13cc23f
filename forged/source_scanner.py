"""The Antigravity agent's eyes: it watches the sources and proposes missions.

A source is rescanned when its refs change (watchdog, debounced) and on a schedule
(APScheduler); when the new material is enough, a dataset is built, a training plan is made (its
ETA from a speed measured on this machine), and a mission is proposed for a person to approve:
at once, saying it is measuring this machine where no speed is known yet, and given its ETA
when the calibration that measures it ends. What happens after approval is `forged.mission_chain`'s.

The git work and dataset building run in worker threads so the event loop never waits on
them; one scan runs at a time, so two triggers never propose the same material twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from agent.advisor import Advisor
from agent.dataset_build import BUILDERS, build_dataset
from agent.policy import Material, decide, pending_material, rationale, training_plan
from agent.safe_git import UnsafeRepository
from agent.token_fit import Fit, load_counter
from engine.memory_probe import MEASURED
from forge_api.config import AgentConfig, implied_base_model
from forge_api.jobs import parse_params
from forge_api.mission_data import DatasetCard, Gate, Measured, MissionData, Plan, Trigger
from forge_api.names import TERMINAL_JOB_STATUSES
from forge_api.paths import ForgePaths
from forge_api.schema import Job, Mission, Source
from forged.job_submit import JobSubmitter
from forged.mission_plan import timed, with_continuation
from forged.registry import ModelRegistry, RegistryError, source_alias

log = logging.getLogger(__name__)
SECONDARY = ("load_s", "eval_tokens_per_s", "gen_step_s")
"""Measures a plain train job may lack (only a calibration measures generation)."""


def speed_note(measured: dict[str, Any] | None, tokens: int, train_s: float | None) -> str:
    """What the ETA rests on, for the rationale: the measured speed, and how much of an epoch
    training's share of the budget (`train_s`) holds where it holds less than one."""
    if not measured or not measured.get("tokens_per_s"):
        return ""
    speed = float(measured["tokens_per_s"])
    note = f"{speed:,.0f} tokens/s measured here at batch {measured.get('batch_size')}"
    epoch_s = tokens / speed
    if train_s and epoch_s > train_s:
        note += (
            f"; training's {train_s / 60:.0f}-min share of the budget holds"
            f" {train_s / epoch_s:.0%} of an epoch"
        )
    return note


class SourceGone(Exception):
    """A watched repository is no longer there."""


class SourceScanner:
    """Watches the sources, scans them, and proposes missions from their new material."""

    def __init__(
        self,
        submitter: JobSubmitter,
        paths: ForgePaths,
        config: AgentConfig,
        models: ModelRegistry,
        advisor: Advisor | None = None,
    ) -> None:
        self.models = models
        self.advisor = advisor
        self.submitter = submitter
        self.store = submitter.store
        self.paths = paths
        self.config = config
        self.lock = asyncio.Lock()
        self.scheduler: Any = None
        self.watcher: Any = None
        self.timers: dict[str, asyncio.TimerHandle] = {}
        # What each source's last scan found: its new material and the policy's verdict.
        self.pending: dict[str, dict[str, Any]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        # Jobs the scanner waits on (calibrations), by id; resolved as they finish.
        # Two proposals may wait on one calibration.
        self.waiting: dict[str, list[asyncio.Future[Job]]] = {}
        # Sources whose repository is gone (deleted, unmounted): not watched until it is back.
        self.gone: set[str] = set()
        # Calibrations running for proposals shown before their ETA (kept from the collector).
        self.tasks: set[asyncio.Task[None]] = set()

    def job_finished(self, job: Job) -> None:
        """Wake a calibration waiting on this job."""
        for waiting in self.waiting.pop(job.id, []):
            if not waiting.done():
                waiting.set_result(job)

    def start(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        from agent.watcher import RepoWatcher

        self.loop = asyncio.get_running_loop()
        self.watcher = RepoWatcher(self._changed_from_thread)
        for source in self.store.list_sources():
            self.watcher.watch(source.id, Path(source.path))

        self.scheduler = AsyncIOScheduler()
        self.scheduler.add_job(
            self.scan_all,
            "interval",
            seconds=self.config.rescan_interval_s,
            max_instances=1,
            coalesce=True,
            id="rescan",
        )
        self.scheduler.start()
        self.resume_measuring()
        asyncio.get_running_loop().create_task(self.scan_all())

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.watcher is not None:
            self.watcher.stop()
        for timer in self.timers.values():
            timer.cancel()

    def added(self, source: Source) -> None:
        """A new source: watch it, and look at it now."""
        if self.watcher is not None:
            self.watcher.watch(source.id, Path(source.path))
        asyncio.get_running_loop().create_task(self.scan(source.id))

    def removed(self, source_id: str) -> None:
        if self.watcher is not None:
            self.watcher.unwatch(source_id)

    def _changed_from_thread(self, source_id: str) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._debounce, source_id)

    def _debounce(self, source_id: str) -> None:
        """Scan once the refs have been quiet for debounce_s (a rebase moves many at once)."""
        if (timer := self.timers.pop(source_id, None)) is not None:
            timer.cancel()
        assert self.loop is not None
        self.timers[source_id] = self.loop.call_later(
            self.config.debounce_s, self._start_scan, source_id
        )

    def _start_scan(self, source_id: str) -> None:
        asyncio.get_running_loop().create_task(self._scan_logged(source_id))

    async def _scan_logged(self, source_id: str) -> None:
        self.timers.pop(source_id, None)
        try:
            await self.scan(source_id)
        except SourceGone:
            pass  # said once, as it went
        except Exception:
            log.exception("scanning source %s failed", source_id)

    async def scan_all(self) -> None:
        for source in self.store.list_sources():
            try:
                await self.scan(source.id)
            except SourceGone:
                pass
            except Exception:
                log.exception("scanning %s failed", source.path)

    async def scan(self, source_id: str) -> Mission | None:
        """Look at one source now; propose a mission when its new material is enough."""
        async with self.lock:
            try:
                source = self.store.get_source(source_id)
            except KeyError:
                return None  # removed since the scan was asked for
            log.info("scanning %s", source.name)
            self._check_there(source)
            try:
                material = await asyncio.to_thread(
                    pending_material, Path(source.path), source.trained_commit
                )
            except UnsafeRepository as exc:  # e.g. its owner changed since it was added
                self.pending[source.id] = {"enough": False, "why": str(exc), "error": str(exc)}
                log.warning("%s: %s", source.name, exc)
                return None
            if material.head:
                self.store.set_source_commits(source.id, last=material.head)
            thresholds = source.config.get("thresholds", {})
            ok, why = decide(
                material,
                int(thresholds.get("min_commits", self.config.min_commits)),
                int(thresholds.get("min_tokens", self.config.min_tokens)),
            )
            if material.rewritten:
                why = (
                    f"history rewritten: the last trained commit {material.rewritten[:12]} is"
                    f" no longer in the repository, so all of it counts as new; {why}"
                )
                log.warning("%s: %s", source.name, why)
            self.pending[source.id] = {
                "commits": material.commits,
                "files": material.files,
                "approx_tokens": material.approx_tokens,
                "enough": ok,
                "why": why,
            }
            if not ok:
                log.info("%s: no mission yet: %s", source.name, why)
                return None
            covered = self.store.missions_for_head(source.id, material.head)
            if any(m.stage != "superseded" for m in covered):
                return None  # already proposed, run, or rejected for exactly this material
            return await self._propose(source, material, why)

    def _check_there(self, source: Source) -> None:
        """Raise SourceGone for a repository deleted (or unmounted) since it was added, and stop
        watching it; watch it again once it is back (the scheduled rescan looks)."""
        if Path(source.path).is_dir():
            if source.id in self.gone:
                self.gone.discard(source.id)
                log.info("%s is back at %s: watching it again", source.name, source.path)
                if self.watcher is not None:
                    self.watcher.watch(source.id, Path(source.path))
            return
        why = f"the repository is gone: {source.path} does not exist; not watched until it is back"
        self.pending[source.id] = {"enough": False, "why": why, "error": why}
        if source.id not in self.gone:
            self.gone.add(source.id)
            log.warning("%s: %s", source.name, why)
            if self.watcher is not None:
                self.watcher.unwatch(source.id)
        raise SourceGone(why)

    def _base_model(self) -> str:
        """The missions' base model: its folder where the registry finds it; where it does not
        and agent.base_model is the default (the tiny model, not built here), the one base model
        this instance has (a person who imported one model means that one); else as configured
        (the train job then says what is wrong)."""
        try:
            return self.models.resolve_base(self.config.base_model)
        except RegistryError as exc:
            bases = [
                m.path for m in self.store.list_models(["base"]) if m.path and Path(m.path).is_dir()
            ]
            if one := implied_base_model(self.config.base_model, bases):
                log.info(
                    "agent.base_model is the default %r, which is not here: missions train "
                    "the one base model there is, %s",
                    self.config.base_model,
                    one,
                )
                return one
            log.warning("agent.base_model: %s; sizing datasets by an estimate", exc)
            return self.config.base_model

    def _fit(self, base_model: str) -> Fit:
        """How examples are sized: the base's own tokenizer and agent.max_seq_len."""
        folder = Path(base_model) if Path(base_model).is_dir() else None
        return Fit(load_counter(folder), self.config.max_seq_len)

    async def _propose(self, source: Source, material: Any, why: str) -> Mission:
        base_model = self._base_model()
        fit = await asyncio.to_thread(self._fit, base_model)
        built = await asyncio.to_thread(
            build_dataset,
            Path(source.path),
            self.paths.datasets_dir,
            source.name,
            since=material.since,  # None after a rewritten history: all of it
            builders=tuple(source.config.get("builders") or BUILDERS),
            include=source.config.get("include") or None,
            exclude=source.config.get("exclude") or None,
            replay_fraction=self.config.replay_fraction,
            synthesize=self.advisor.qa_pairs
            if self.advisor and self.advisor.enabled and self.advisor.settings.qa_pairs
            else None,
            fit=fit,
        )
        card = DatasetCard.model_validate(built.card)
        dataset = self.store.add_dataset(
            f"{source.name} v{card.version}", str(built.path), card.examples, card, source.id
        )
        plan = training_plan(
            base_model,
            built.path,
            built.card["examples"],
            fit.max_seq_len,
            self.config.max_train_minutes,
        )
        measured = self._measured(base_model)
        measuring = measured is None and self.config.calibrate
        data = MissionData(
            head=material.head,
            trigger=Trigger(
                commits=material.commits,
                files=material.files,
                approx_tokens=material.approx_tokens,
                since=material.since,
                why=why,
            ),
            dataset_id=dataset.id,
            card=card,
            base_model=base_model,
            plan=Plan.model_validate(plan),
            measured=Measured.model_validate(measured) if measured else None,
            measuring=True if measuring else None,
            previous_adapter=self._previous_adapter(source.id),
            gate=Gate(
                min_gain_pct=self.config.min_gain_pct,
                max_regression_pct=self.config.max_regression_pct,
            ),
        )
        data = with_continuation(
            data, data.previous_adapter, self._trained_on(source.id, data.previous_adapter)
        )
        data = await self._timed(data, source.name, material, why)
        title = (
            f"Fine-tune {Path(base_model).name} on {material.commits} new commits of {source.name}"
        )
        mission = self.store.propose_mission(source.id, title, data)
        log.info("proposed %s: %s", mission.id, title)
        if measuring:  # shown now; its ETA once this machine is measured
            self._measure_later(mission, fit.max_seq_len)
        return mission

    async def _timed(self, data: MissionData, source: str, material: Any, why: str) -> MissionData:
        """The mission data with its plan timed from what was measured, and the rationale that
        says so."""
        timing = timed(data, self.models)
        card = data.card.model_dump(mode="json") if data.card else {}
        measured = data.measured.model_dump(mode="json") if data.measured else None
        budget = data.plan.params.get("max_minutes") if data.plan else None
        train_s = timing.timing.train_budget_s if timing.timing else None
        note = speed_note(measured, int(card.get("approx_tokens") or 0), train_s)
        why_text = rationale(
            source, material, card, timing.eta_s, note, bool(data.measuring), budget
        )
        if self.advisor is not None and self.advisor.enabled and not data.measuring:
            facts = {"source": source, "trigger": why, "card": card, "eta_s": timing.eta_s}
            why_text = await asyncio.to_thread(self.advisor.rationale, facts, why_text)
        merged = data.model_dump(mode="json") | timing.model_dump(mode="json")
        return MissionData.model_validate(merged | {"rationale": why_text})

    def resume_measuring(self) -> None:
        """Proposals a stopped daemon left waiting on a calibration: wait on it again."""
        for mission in self.store.list_missions(["proposed"], None, 1000):
            if mission.data.measuring:
                self._measure_later(mission, None)

    def _measure_later(self, mission: Mission, max_seq_len: int | None) -> None:
        task = asyncio.get_running_loop().create_task(self._measure(mission, max_seq_len))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _measure(self, mission: Mission, max_seq_len: int | None) -> None:
        """Calibrate for a proposed mission's base model, then give the mission its ETA (and
        the plan its timing) from what was measured; while it is still proposed, that is, for
        an approved plan has already been timed without it."""
        data = mission.data
        plan = data.plan.params if data.plan else {}
        base_model = str(plan.get("base_model") or data.base_model)
        try:
            measured = self._measured(base_model) or await self._calibrate(
                base_model, Path(str(plan.get("dataset"))), int(max_seq_len or plan["max_seq_len"])
            )
        except Exception:
            log.exception("mission %s: measuring this machine failed", mission.id)
            measured = None
        found = Measured.model_validate(measured) if measured else None
        now = self.store.get_mission(mission.id)
        if now.stage == "proposed":
            source = self.store.get_source(str(now.source_id))
            t = now.data.trigger or Trigger()
            material = Material(now.data.head or "", t.since, t.commits, t.files, t.approx_tokens)
            done = now.data.model_copy(update={"measured": found, "measuring": False})
            timed_data = await self._timed(done, source.name, material, t.why)
            if self.store.get_mission(now.id).stage == "proposed":  # not approved meanwhile
                self.store.update_mission_data(now.id, timed_data)
                return
        # Approved (or superseded) meanwhile: its plan was timed without the measure; keep it.
        self.store.update_mission_data(now.id, MissionData(measured=found, measuring=False))

    def _measured(self, base_model: str) -> dict[str, Any] | None:
        """What train jobs of this base model measured on this machine (`measured.json`): the
        newest one's speed and row memory, and where it did not measure them (only a
        calibration generates), the newest measures of loading, held-out loss and generation;
        None where none has run here yet."""
        jobs, _ = self.store.list_jobs(status=["completed"], kind=["train"], limit=50)
        found: dict[str, Any] | None = None
        for job in jobs:
            if job.params.get("base_model") != base_model:
                continue
            try:
                one: dict[str, Any] = json.loads((Path(job.run_dir) / MEASURED).read_text())
            except (OSError, ValueError):
                continue
            if not one.get("tokens_per_s"):
                continue
            if found is None:
                found = one
            for key in SECONDARY:
                if found.get(key) is None and one.get(key) is not None:
                    found[key] = one[key]
            if all(found.get(key) is not None for key in SECONDARY):
                break
        return found

    async def _calibrate(
        self, base_model: str, dataset: Path, max_seq_len: int
    ) -> dict[str, Any] | None:
        """A few real steps of the base model on the new dataset, before the plan is shown:
        their speed and memory make the plan's ETA. A calibration already queued or running
        for this base (one a restarted daemon took up again) is waited on rather than repeated;
        after one that failed, none is tried again (a train job measures as it runs). None, with
        the reason logged, when it fails; the mission is proposed all the same."""
        earlier, _ = self.store.list_jobs(kind=["train"], text="calibrate", limit=20)
        mine = [
            j
            for j in earlier
            if j.params.get("calibrate") and j.params.get("base_model") == base_model
        ]
        if mine and mine[0].status in ("failed", "cancelled"):
            log.info("not calibrating %s again: %s", base_model, mine[0].error)
            return None
        if mine and mine[0].status in ("queued", "running"):
            job = mine[0]
        else:
            params = parse_params(
                "train",
                {
                    "base_model": base_model,
                    "dataset": str(dataset),
                    "max_seq_len": max_seq_len,
                    "calibrate": True,
                    "skip_bad_examples": True,
                    "val_fraction": 0,
                },
            ).model_dump(mode="json", exclude_unset=True)
            job = self.submitter.submit("train", params, f"calibrate {Path(base_model).name} here")
        done: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(job.id, []).append(done)
        # It may have ended between the look and the wait.
        if (now := self.store.get_job(job.id)).status in TERMINAL_JOB_STATUSES:
            self.job_finished(now)
        finished = await done
        if finished.status != "completed":
            log.warning("calibration %s %s: %s", job.id, finished.status, finished.error)
            return None
        return self._measured(base_model)

    def _trained_on(self, source_id: str, adapter: str | None) -> str:
        """What the source's current adapter was trained on, for the card: ' (mission …, N
        commits up to abc1234)', or '' where no mission of the source made it."""
        for m in self.store.list_missions(["done", "deploying"], source_id, 50):
            if adapter and m.data.adapter == adapter:
                commits = f"{m.data.trigger.commits} commits" if m.data.trigger else "its material"
                head = f" up to {m.data.head[:7]}" if m.data.head else ""
                return f" (mission {m.id}: {commits}{head})"
        return ""

    def _previous_adapter(self, source_id: str) -> str | None:
        """The source's current adapter, which a new one continues and is compared with: the
        deployed one, else the last one that passed its mission's gate (an adapter that forgot,
        or gained nothing, is never built on)."""
        deployed = self.models.current(source_alias(self.store.get_source(source_id).name))
        if deployed is not None and deployed.data.adapter:
            return deployed.data.adapter
        for m in self.store.list_missions(["done", "deploying"], source_id, 50):
            if m.data.adapter and m.data.gate_passed:
                return m.data.adapter
        return None
