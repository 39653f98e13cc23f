"""The Antigravity agent's hands: the chain of an approved mission, train → eval → deploy.

Each step is taken when the job before it finishes (`on_job_finished`, called by the daemon
after the registry has recorded what that job made); the deploy only when the new adapter
beats the model the source's alias serves (or the base, before the first deploy), saying so
either way. A daemon stopped between steps takes the due step at its next start
(`resume_chains`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from agent.policy import (
    compare_scores,
    interval,
    interval_text,
    measurable,
    regression,
)
from forge_api.config import AgentConfig
from forge_api.jobs import parse_params
from forge_api.mission_data import EvalResults, Gate, MissionData
from forge_api.mission_flow import ACTIVE_MISSION_STAGES, STEPS
from forge_api.names import TERMINAL_JOB_STATUSES
from forge_api.run_dir import RunDir
from forge_api.schema import Job, Mission
from forged.job_submit import JobSubmitter
from forged.mission_plan import eval_sizes, train_job_params
from forged.registry import ModelRegistry, RegistryError, source_alias
from forged.rpc import RpcError

log = logging.getLogger(__name__)


def quiet_until(window: str, now: float) -> float | None:
    """The end of the quiet window `now` falls in (local time), or None outside it."""
    if not window:
        return None
    start_s, end_s = window.split("-")
    here = dt.datetime.fromtimestamp(now)
    start = here.replace(hour=int(start_s[:2]), minute=int(start_s[3:]), second=0, microsecond=0)
    end = here.replace(hour=int(end_s[:2]), minute=int(end_s[3:]), second=0, microsecond=0)
    if start <= end:  # a window inside one day, e.g. 09:00-18:00
        return end.timestamp() if start <= here < end else None
    if here >= start:  # a window across midnight, e.g. 22:00-07:00, evening part
        return (end + dt.timedelta(days=1)).timestamp()
    return end.timestamp() if here < end else None


AFTER = {"train": "_after_train", "eval": "_after_eval", "deploy": "_after_deploy"}
"""The code of each row of `forge_api.mission_flow.STEPS`: what follows its job's completion."""


class MissionChain:
    """Runs approved missions step by step, and retries a failed one from the step that failed."""

    def __init__(self, submitter: JobSubmitter, config: AgentConfig, models: ModelRegistry) -> None:
        self.submitter = submitter
        self.store = submitter.store
        self.runner = submitter.runner
        self.config = config
        self.models = models

    def approve(self, mission: Mission, data: MissionData | None = None) -> Job:
        """A person's approval of a proposed mission (with `data`, its changed plan): the
        approval and its train job in one transaction, with the train job's checks at submit
        first (a refusal writes nothing); eval follows it (see on_job_finished)."""
        data = data or mission.data
        if data.plan is None:
            raise ValueError(f"mission {mission.id} has no training plan")
        values = self.submitter.check("train", train_job_params(data))
        hold = quiet_until(self.config.quiet_hours, time.time())
        if hold:
            data = data.model_copy(update={"held_until": hold})
        step = ("train", f"mission {mission.id}: train", values)
        job = self.store.approve_mission(mission.id, data, step, not_before=hold)
        self.runner.wake()
        return job

    def start_over(self, mission: Mission) -> Job:
        """A failed mission's train step again, from the start (no checkpoint to resume)."""
        params = train_job_params(mission.data)
        hold = quiet_until(self.config.quiet_hours, time.time())
        if hold:
            self.store.update_mission_data(mission.id, MissionData(held_until=hold))
        return self.submitter.submit(
            "train", params, f"mission {mission.id}: train", mission.id, not_before=hold
        )

    def retry(self, mission: Mission) -> Job:
        """Run a failed mission again from the step that failed: a train job that left a
        checkpoint continues from it; any other step's job runs again with the same params."""
        step = mission.failed_step or "train"
        tried = [j for j in self.store.mission_jobs(mission.id) if j.kind == step]
        last = tried[-1] if tried else None
        if step == "train" and last is not None and last.checkpoint:
            job = self.runner.resume(last.id)
            self.store.set_mission_stage(mission.id, "training")
            return job
        if step == "train" or last is None:
            return self.start_over(mission)
        return self.submitter.submit(
            step, last.params, f"mission {mission.id}: {step} (retry)", mission.id
        )

    def resume_chains(self) -> None:
        """Missions whose chain stopped with the daemon: take the step they are due.

        A step is taken when the job before it finishes; a daemon killed in between (or between
        approving and queueing the train job) would leave the mission waiting for ever. Only the
        mission's newest job is looked at, and a step's job is recorded on the mission as it is
        queued (`Store.create_job`), so no step runs twice.
        """
        for mission in self.store.list_missions(ACTIVE_MISSION_STAGES, None, 1000):
            jobs = self.store.mission_jobs(mission.id)
            if not jobs:
                # Only a store from before approval and its job were one transaction holds one.
                log.info("mission %s: approved but its train job was never queued", mission.id)
                self.start_over(mission)
            elif jobs[-1].status in TERMINAL_JOB_STATUSES:
                log.info("mission %s: taking the step after %s", mission.id, jobs[-1].id)
                self.on_job_finished(jobs[-1])

    def on_job_finished(self, job: Job) -> None:
        """The step after `job`, if it belongs to an active mission."""
        if job.mission_id is None:
            return
        mission = self.store.get_mission(job.mission_id)
        if mission.stage not in ACTIVE_MISSION_STAGES:
            return  # a job of a mission already failed or done (e.g. cancelled by hand twice)
        if job.status != "completed":
            why = f"{job.kind} job {job.id} {job.status}: {job.error or 'no reason given'}"
            self.store.set_mission_stage(mission.id, "failed", failed_step=job.kind, failure=why)
            log.info("mission %s failed at %s: %s", mission.id, job.kind, why)
        elif after := AFTER.get(job.kind):
            try:
                getattr(self, after)(mission, job)
            except RpcError as exc:  # the next step's job was refused at submit
                step = next((s.then for s in STEPS if s.kind == job.kind), None) or job.kind
                why = f"the {step} job could not be queued: {exc.message}"
                self.store.set_mission_stage(mission.id, "failed", failed_step=step, failure=why)
                log.info("mission %s failed at %s: %s", mission.id, step, why)

    def _after_train(self, mission: Mission, job: Job) -> None:
        """The eval step: the adapter against the base (and the deployed one) on the held-out
        rows of the dataset it was trained on."""
        trained = job.params  # what the adapter was trained with, changes at approval included
        params = {
            "base_model": mission.data.base_model,
            "dataset": trained["dataset"],
            "adapter": str(RunDir.of(job.run_dir).adapter),
            "previous_adapter": mission.data.previous_adapter,
            "max_seq_len": trained.get("max_seq_len"),
            # The same held-out rows as training's: a wider fraction would score the
            # adapter on rows it was trained on.
            "val_fraction": trained.get("val_fraction", 0.1),
            **eval_sizes(mission.data.timing),
            # What the adapter must not forget: the source's earlier held-out rows, and the
            # base's own answers to general prompts.
            "old_datasets": self._earlier_datasets(mission, trained["dataset"]),
            "general": True,
            "general_dataset": self.config.general_dataset or None,
        }
        values = parse_params("eval", params).model_dump(mode="json")
        self.store.update_mission_data(mission.id, MissionData(adapter=values["adapter"]))
        self.submitter.submit("eval", values, f"mission {mission.id}: eval", mission.id)

    def _earlier_datasets(self, mission: Mission, dataset: str) -> list[str]:
        """The source's datasets before this mission's: their held-out rows are old material."""
        if not mission.source_id:
            return []
        found = self.store.list_datasets(mission.source_id)
        return [
            d.path for d in reversed(found) if d.path != dataset and d.id != mission.data.dataset_id
        ]

    def _after_eval(self, mission: Mission, job: Job) -> None:
        """The deploy step, where the adapter beats what its source serves (decided apart)."""
        if not mission.source_id:
            return
        # The source's new baseline: later missions count material from this commit.
        self.store.set_source_commits(mission.source_id, trained=mission.data.head)
        self.store.set_mission_stage(mission.id, "deploying", self._results(mission, job))
        asyncio.get_running_loop().create_task(self._deploy_if_better(mission, job))

    def _after_deploy(self, mission: Mission, job: Job) -> None:
        """The end of the chain: done, deployed as the job's tag."""
        tag = job.params.get("tag")
        self.store.set_mission_stage(mission.id, "done", MissionData(deployed=tag))

    def _results(self, mission: Mission, eval_job: Job) -> MissionData:
        """The eval's losses for the mission's card (the registry recorded them on the adapter,
        its listener running first)."""
        adapter = self.models.adapter_at(str(eval_job.params.get("adapter")))
        scores = adapter.data.eval if adapter is not None else None
        if not scores or "base" not in scores:
            return MissionData()
        gain = mission.data.gate.min_gain_pct if mission.data.gate else self.config.min_gain_pct
        verdict = compare_scores(scores, gain)
        return MissionData(results=EvalResults.model_validate(verdict))

    async def _deploy_if_better(self, mission: Mission, eval_job: Job) -> None:
        """Deploy the mission's adapter when its eval beats what its source serves now."""
        try:
            passed, decision = self._gate(mission, eval_job)
            job = None
            if passed:
                decision, job = await self._deploy(mission, eval_job, decision)
        except (OSError, ValueError, KeyError) as exc:
            log.exception("mission %s: deciding on the deploy failed", mission.id)
            passed, job = False, None
            decision = f"not deployed: deciding failed: {type(exc).__name__}: {exc}"
        update = MissionData(deploy=decision, gate_passed=passed)
        # A deploy job moved the mission to `deploying` as it was queued; without one, it is done.
        if job is None:
            self.store.set_mission_stage(mission.id, "done", update)
        else:
            self.store.update_mission_data(mission.id, update)
        log.info("mission %s: %s", mission.id, decision)

    def _gate(self, mission: Mission, eval_job: Job) -> tuple[bool, str]:
        """(passed, why): the new adapter against the source's current one (deployed, else the
        last that passed its gate; else the base), by the gate the mission was proposed with.
        The registry has already recorded this eval's scores on the adapter (its listener runs
        first), so the decision reads them there rather than the report again."""
        adapter = self.models.adapter_at(str(eval_job.params["adapter"]))
        scores = adapter.data.eval if adapter is not None else None
        if adapter is None or not scores:
            return False, (
                f"not deployed: no eval results are recorded for {eval_job.params['adapter']}"
            )
        if "previous" in scores:
            source = self.store.get_source(str(mission.source_id))
            deployed = self.models.current(source_alias(source.name))
            who = "previous"
            rival = f"the deployed {deployed.name}" if deployed else "the current adapter"
        else:
            who, rival = "base", "the base model"
        gate = mission.data.gate or Gate(
            min_gain_pct=self.config.min_gain_pct,
            max_regression_pct=self.config.max_regression_pct,
        )
        # What it forgot comes first: the gravest reason, whatever it gained.
        if lost := regression(scores, gate.max_regression_pct):
            return False, f"not deployed: {lost}"
        old, new = scores[who]["eval_loss"], scores["adapter"]["eval_loss"]
        versus = f"eval loss {new:.4f} against {rival}'s {old:.4f}"
        if new >= old:
            return False, f"not deployed: the new adapter does not beat {rival} ({versus})"
        gain = (old - new) / old * 100 if old else 0.0
        noise = interval(scores, who)
        if not measurable(gain, gate.min_gain_pct, noise):
            return False, (
                f"not deployed: no measurable change against {rival} ({versus}, {-gain:+.1f} %"
                f"{interval_text(noise)}; a deploy needs a gain of more than"
                f" {gate.min_gain_pct:g} % (agent.min_gain_pct) whose interval is all gain)"
            )
        return True, f"it beats {rival} ({versus}, {-gain:+.1f} %)"

    async def _deploy(self, mission: Mission, eval_job: Job, why: str) -> tuple[str, Job | None]:
        """A deploy job for an adapter that passed the gate, where deploys can run; else why not."""
        later = "deploy it from the Models screen (d) or with `forge models deploy`"
        if not self.models.config.ollama.deploy_missions:
            return f"not deployed: ollama.deploy_missions is off, though {why}; {later}", None
        if (unreachable := await self.models.reachable()) is not None:
            return f"not deployed: {unreachable}, though {why}; {later} once it runs", None
        adapter = self.models.adapter_at(str(eval_job.params["adapter"]))
        assert adapter is not None  # the gate read its scores
        try:
            params = self.models.plan_deploy(adapter)
        except RegistryError as exc:
            return f"not deployed: {exc}", None
        job = self.submitter.submit(
            "deploy", params, f"mission {mission.id}: deploy {params['tag']}", mission.id
        )
        return f"deploying as {params['tag']}: {why}", job


if set(AFTER) != {step.kind for step in STEPS} or not all(
    hasattr(MissionChain, name) for name in AFTER.values()
):  # pragma: no cover - a step declared without its code, or code without its row
    raise ImportError(f"mission steps {[s.kind for s in STEPS]} and AFTER {AFTER} disagree")
