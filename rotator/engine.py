"""The engine: runs a rotation's steps in order and owns time.

The record is written before every side effect and after it, so a process
killed at any instant leaves a record from which ``resume`` finishes the
rotation or rolls it back. Deadlines are stored as wall-clock instants in the
record, so they survive a restart. Abort and promote arrive as requests in
the store's control channel and are acted on between steps.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from rotator.config import GroupConfig, Policy
from rotator.errors import InputError, Refused, RotatorError, TransientError
from rotator.identity import holder as _holder
from rotator.model import RotationRecord, RotationStatus, StepState, StepStatus
from rotator.plan import RETIRE_KINDS, WorldView, choose_slots, plan_rollback, plan_rotation
from rotator.ports import (
    AppDeployer,
    HealthSource,
    Infrastructure,
    Lock,
    LockHeld,
    Metrics,
    RecordStore,
    SlotOutputs,
    TrafficRouter,
    Verdict,
)
from rotator.retries import stop_at, stop_when
from rotator.state.pair_events import unfinished_failover
from rotator.steps import STEPS, WATCHED_KINDS, Progress, StepContext, world_weights

log = logging.getLogger(__name__)

MAX_RECHECKS = 20  # per poll interval: a burst of changes is followed, a fake cannot spin
MAX_ACT_ATTEMPTS = 5  # of a step's side effect after transient faults (adapters retry too)


class LockLost(RotatorError):
    exit_code = 3


def unexpected(st: StepState, exc: Exception) -> str:
    """A step's failure that no adapter foresaw, said as plainly as it can be."""
    log.error("step %s failed unexpectedly", st.name, exc_info=exc)
    return f"{st.name}: unexpected error: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Event:
    # started, step-started, step-progress, step-done, step-failed, analysis, rollback,
    # waiting, paused, finished
    kind: str
    record: RotationRecord
    step: StepState | None = None
    message: str = ""


class Engine:
    def __init__(
        self,
        *,
        group: GroupConfig,
        policy: Policy,
        infra: Infrastructure,
        apps: AppDeployer,
        health: HealthSource,
        traffic: TrafficRouter,
        store: RecordStore,
        guard: Any,
        app_definitions: list[dict[str, Any]],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[[Event], None] | None = None,
        interactive: bool = False,
        environment: str = "",
        metrics: Metrics | None = None,
        metrics_delay: float = 0.0,
    ):
        self.group = group
        self.policy = policy
        self.infra = infra
        self.apps = apps
        self.health = health
        self.traffic = traffic
        self.store = store
        self.guard = guard
        self.app_definitions = app_definitions
        self.clock = clock
        self.sleep = sleep
        self.on_event = on_event or (lambda e: None)
        self.interactive = interactive
        self.environment = environment
        self.metrics = metrics
        self.metrics_delay = metrics_delay
        self._lock: Lock | None = None
        self._last_progress: tuple[str, str] | None = None

    # ------------------------------------------------------------------ entry points

    def start(self, ami: str, *, break_lock: bool = False) -> RotationRecord:
        now = self.clock()
        rid = RotationRecord.new_id(self.group.name, now)
        lock = self.store.acquire(self.group.name, rid, break_stale=break_lock)
        peer_lock = None
        try:
            current = self.store.load(self.group.name)
            if current and not RotationStatus(current["status"]).terminal:
                raise Refused(
                    f"rotation {current['id']} of {self.group.name} is {current['status']}: "
                    f"run `rotate resume {self.group.name}` or `rotate abort {self.group.name}` first"
                )
            pending = unfinished_failover(self.store, self.group.name)
            if pending is not None:
                raise Refused(
                    f"{pending['kind']} {pending.get('event_id')} of the pair did not finish "
                    f"({pending['status']}): `rotate resume {self.group.name}` finishes it first"
                )
            peer_lock = self._hold_peer(rid)
            record = self.new_record(ami, rid)
            self._save(record)
            if peer_lock is not None:
                # from here the peer finds this group's lock held, for the whole rotation
                peer_lock.release()
                peer_lock = None
            self._emit("started", record, message=f"{record.stable or '-'} -> {record.candidate}")
            return self._run(record, lock)
        finally:
            if peer_lock is not None:
                peer_lock.release()
            lock.release()

    def _hold_peer(self, rid: str) -> Lock | None:
        """A pair's groups share records and an edge: a rotation of one starts only while
        the other is idle. Its lock is held until this rotation's record is written (then
        this group's own lock keeps the peer out), so two starts cannot both pass."""
        peer = self.group.peer
        if not peer:
            return None
        try:
            held = self.store.acquire(peer, rid)
        except LockHeld as exc:
            raise Refused(f"{self.group.name} shares its traffic with {peer}, which is busy: "
                          f"{exc}" + (f"; `rotate resume {peer}` carries on what it left"
                                      if exc.stale else "")) from None
        try:
            current = self.store.load(peer)
            if current and not RotationStatus(current["status"]).terminal:
                raise Refused(
                    f"{self.group.name} shares its traffic with {peer}, whose rotation "
                    f"{current['id']} is {current['status']}: `rotate resume {peer}` or "
                    f"`rotate abort {peer}` first")
        except BaseException:
            held.release()
            raise
        return held

    def new_record(self, ami: str, rid: str | None = None) -> RotationRecord:
        """Plan against the world as it is now (also used by ``rotate plan``)."""
        now = self.clock()
        state = self.traffic.read()
        weights = world_weights(state)
        if weights is None:
            raise Refused(
                f"the records of {self.group.name} disagree on their weights "
                f"({state.weights}): fix them by hand or finish the rotation that split them"
            )
        # Which slots hold resources only matters when nothing serves (a first build).
        held = [] if weights else self.infra.slots_with_resources()
        world = WorldView(weights=weights, slots_with_resources=held)
        if not weights and world.slots_with_resources and state.others_weight():
            # Another group (its peer) serves these records: taking the path of a first build
            # would put weight on this group too, and split the pair's traffic.
            serving = sorted({i for w in state.others.values() for i, v in w.items() if v})
            if self.group.standby:
                how = (f"fail over to it first (`rotate failover {self.group.peer} "
                       f"--to {self.group.name}`)")
            else:
                how = f"fail back first (`rotate failback {self.group.name}`)"
            raise Refused(
                f"{self.group.name} carries no traffic: {', '.join(serving)} serve(s) its "
                f"records; rotating it now would split their traffic between the pair: {how}"
            )
        roles = choose_slots(world)
        stable_ami = None
        slots: dict[str, dict[str, Any]] = {}
        if roles.stable is not None:
            out = self._known_outputs(roles.stable) or self.infra.read_outputs(roles.stable)
            if out is None:
                raise Refused(
                    f"slot {roles.stable} carries traffic but Terraform has no resources for it"
                )
            slots[roles.stable] = out.to_dict()
            stable_ami = out.ami or None
        return RotationRecord(
            id=rid or RotationRecord.new_id(self.group.name, now),
            group=self.group.name,
            ami=ami,
            policy=self.policy.name,
            policy_hash=self.policy.fingerprint(),
            environment=self.environment,
            stable=roles.stable,
            candidate=roles.candidate,
            stable_ami=stable_ami,
            created_at=now,
            updated_at=now,
            holder=_holder(),
            steps=plan_rotation(self.group, self.policy, roles),
            weights={roles.stable: 100} if roles.stable else {},
            slots=slots,
        )

    def _known_outputs(self, slot: str) -> SlotOutputs | None:
        """The live slot's outputs as the last finished rotation recorded them (no Terraform
        run needed); None when that record does not vouch for this slot."""
        last = self.store.load(self.group.name)
        if not last:
            return None
        status = RotationStatus(last["status"])
        live = {RotationStatus.DONE: last["candidate"],
                RotationStatus.ROLLED_BACK: last.get("stable")}.get(status)
        if live != slot or slot not in last.get("slots", {}):
            return None
        return SlotOutputs.from_dict(last["slots"][slot])

    def resume(self, *, break_lock: bool = False) -> RotationRecord:
        data = self.store.load(self.group.name)
        if data is None:
            raise InputError(f"no rotation of {self.group.name} to resume")
        try:
            lock = self.store.acquire(self.group.name, data["id"], break_stale=break_lock)
        except LockHeld as exc:
            # The process that ran this very rotation died (kill -9, reboot): its
            # lock is stale and resuming is exactly what it asks for.
            if not (exc.stale and exc.info.rotation_id == data["id"]):
                raise
            lock = self.store.acquire(self.group.name, data["id"], break_stale=True)
        try:
            record = RotationRecord.from_dict(self.store.load(self.group.name) or data)
            if record.status.terminal:
                raise InputError(
                    f"rotation {record.id} of {self.group.name} is already {record.status.value}"
                )
            if record.policy_hash != self.policy.fingerprint():
                raise InputError(
                    f"policy {record.policy!r} changed since rotation {record.id} started "
                    f"(hash {record.policy_hash} -> {self.policy.fingerprint()}); restore it, "
                    f"or abort with `rotate abort {self.group.name}`",
                    file=f"policies/{record.policy}.yaml",
                )
            if record.status in (RotationStatus.PAUSED, RotationStatus.ROLLBACK_FAILED):
                step = record.current_step
                if step is not None and step.status is StepStatus.FAILED:
                    self._retry(step)
                record.status = (RotationStatus.ROLLING_BACK if record.rolling_back
                                 else RotationStatus.RUNNING)
                record.reason = ""
            elif record.status is RotationStatus.WAITING and not self.interactive:
                # a run that exits at the approval goes round once: a promotion sent
                # meanwhile is acted on, else it says again that it waits
                record.status = RotationStatus.RUNNING
            # interactive, it still waits for the approval: it never shows as running (the
            # dashboard's Promote button would go grey under an operator's hand)
            record.holder = _holder()
            record.note(self.clock(), "resumed")
            self._save(record)
            self._emit("started", record, message="resumed")
            return self._run(record, lock)
        finally:
            lock.release()

    # ------------------------------------------------------------------ the loop

    def _context(self, record: RotationRecord) -> StepContext:
        return StepContext(
            group=self.group, policy=self.policy, record=record, infra=self.infra,
            apps=self.apps, health=self.health, traffic=self.traffic,
            app_definitions=self.app_definitions, clock=self.clock, guard=self.guard,
            interactive=self.interactive, save=lambda: self._save(record),
            metrics=self.metrics, metrics_delay=self.metrics_delay,
        )

    def _run(self, record: RotationRecord, lock: Lock) -> RotationRecord:
        self._lock = lock
        ctx = self._context(record)
        try:
            while not record.status.terminal and not self._stopped(record):
                self._check_lock()
                self._apply_controls(record, ctx)
                step = record.current_step
                if step is None:
                    self._finish(record)
                    break
                self._advance(ctx, record, step)
        except LockLost:
            raise  # another process may hold the rotation now: its record is not ours to write
        except KeyboardInterrupt:
            self._stop(record, record.current_step, RotationStatus.PAUSED,
                       f"interrupted by the operator (`rotate resume {record.group}` carries on, "
                       f"`rotate abort {record.group}` rolls back)")
            raise
        except Exception as exc:
            # Whatever broke, the record must not claim a process is running it.
            self._stop(record, record.current_step, RotationStatus.PAUSED,
                       f"stopped by an unexpected error: {type(exc).__name__}: {exc} "
                       f"(`rotate resume {record.group}` carries on, "
                       f"`rotate abort {record.group}` rolls back)")
            if not isinstance(exc, RotatorError):
                log.error("rotation %s stopped by an unexpected error", record.id, exc_info=exc)
        finally:
            ctx.close_watches()
            self._lock = None
        return record

    def _stopped(self, record: RotationRecord) -> bool:
        if record.status is RotationStatus.WAITING and self.interactive:
            return False  # a terminal user waits here for `rotate promote`
        return record.status.stopped

    def _check_lock(self) -> None:
        if self._lock is not None and self._lock.lost():
            raise LockLost(
                f"lost the lock of {self.group.name}: stopped before the next change; "
                f"run `rotate resume {self.group.name}`"
            )

    def _apply_controls(self, record: RotationRecord, ctx: StepContext) -> None:
        """Act once on each operator request that arrived since the last look."""
        control = self.store.read_control(self.group.name)
        if not control or control.get("rotation_id") != record.id:
            return
        for request in control.get("requests", [])[len(record.operator_actions):]:
            action = request.get("action")
            if action == "promote":
                outcome, roll_back = self._promote(record, request), False
            elif action == "override-quiet":
                outcome, roll_back = (f"slot {request.get('step')} may be destroyed without "
                                      "waiting until it is quiet"), False
            else:
                outcome, roll_back = self._abort(record, request)
            record.operator_actions.append({**request, "outcome": outcome})
            record.note(self.clock(), f"{request.get('action')} by {request.get('by')} "
                                      f"({request.get('via')}): {outcome}")
            if roll_back:
                self._start_rollback(record, ctx, f"aborted by {request.get('by')}: "
                                                  f"{record.abort_requested}")
            else:
                self._save(record)

    @staticmethod
    def _promote(record: RotationRecord, request: dict[str, Any]) -> str:
        step = record.current_step
        if (step is None or record.rolling_back or step.kind != "approve"
                or step.name != request.get("step")):
            return f"ignored: {request.get('step')!r} is not the approval waiting now"
        step.params["approved"] = {k: request.get(k) for k in ("by", "via", "at")}
        return f"approved {step.name}"

    @staticmethod
    def _abort(record: RotationRecord, request: dict[str, Any]) -> tuple[str, bool]:
        """What an abort request does now; True when it starts the rollback."""
        if record.abort_requested:
            return "ignored: an abort was already requested", False
        record.abort_requested = request.get("reason") or "requested by operator"
        step = record.current_step
        if record.rolling_back:
            return "already rolling back", False
        if step is not None and step.kind in RETIRE_KINDS:
            return ("too late: the new slot already serves all traffic; "
                    "retiring the old one"), False
        if step is not None and step.status is StepStatus.RUNNING:
            step.status = StepStatus.FAILED
            step.reason = "aborted"
        return "rolling back", True

    def _advance(self, ctx: StepContext, record: RotationRecord, st: StepState) -> None:
        step = STEPS[st.kind]
        if st.status is StepStatus.PENDING:
            now = self.clock()
            st.status = StepStatus.RUNNING
            st.started_at = now
            st.deadline = now + step.timeout(ctx, st)
            self._save(record)
            self._emit("step-started", record, st)

        if not st.acted:
            try:
                self._act(ctx, record, step, st)
            except TransientError as exc:
                if self._requested(record):
                    return  # an operator's request waits: act on it, then try again
                self._fail(record, ctx, st, f"{st.name}: {exc} (attempt {st.attempts})")
                return
            except RotatorError as exc:  # a traffic-guard refusal too: the step failed
                self._fail(record, ctx, st, str(exc))
                return
            except Exception as exc:
                self._fail(record, ctx, st, unexpected(st, exc))
                return
            st.acted = True
            self._save(record)  # and after it

        started = self.clock()
        remaining = (st.deadline or math.inf) - started
        wait = max(0.0, min(step.poll_interval, remaining))
        progress = self._check(ctx, step, st, wait)
        for _ in range(MAX_RECHECKS):
            # a check that blocks on changes and saw one is asked again for what is left
            # of its interval, instead of sleeping through it (a gate passes when it passes)
            left = wait - (self.clock() - started)
            if not (progress.state == "running" and progress.recheck) or left <= 0:
                break
            progress = self._check(ctx, step, st, left)
        if progress.state == "running" and st.kind in WATCHED_KINDS:
            progress = self._watch_candidate(ctx, progress, wait - (self.clock() - started))
        if progress.state == "done":
            if record.status is RotationStatus.WAITING:
                record.status = RotationStatus.RUNNING
            st.status = StepStatus.DONE
            st.finished_at = self.clock()
            st.reason = progress.reason
            record.cursor += 1
            record.note(st.finished_at, progress.reason or "done", st.name)
            self._save(record)
            self._emit("step-done", record, st, progress.reason)
        elif progress.state == "failed":
            self._fail(record, ctx, st, progress.reason)
        elif progress.state == "waiting":
            if record.status is not RotationStatus.WAITING:
                record.status = RotationStatus.WAITING
                record.note(self.clock(), progress.reason, st.name)
                if not self.interactive:
                    # this run exits: nothing judges the canary until someone promotes or
                    # resumes it, and that one judges the whole wait first
                    record.unwatched_since = self.clock()
                    record.note(self.clock(), "nobody watches the candidate while it waits")
                self._save(record)
                self._emit("waiting", record, st, progress.reason)
            if self.interactive:
                # a waiting approval keeps its gates and metric analysis judging
                judged = self._watch_candidate(ctx, Progress("waiting"), step.poll_interval)
                if judged.state == "failed":
                    self._fail(record, ctx, st, judged.reason)
                    return
                self._progress(record, st, self._analysis_note(record) or progress.reason)
                self._pause(ctx, step.poll_interval - (self.clock() - started))
        else:
            if self.clock() >= (st.deadline or math.inf):
                self._fail(record, ctx, st, step.on_deadline(ctx, st))
                return
            self._progress(record, st, progress.reason)
            left = step.poll_interval - (self.clock() - started)
            if st.kind in WATCHED_KINDS:
                self._pause(ctx, left)
            elif left > 0:
                self.sleep(left)

    def _act(self, ctx: StepContext, record: RotationRecord, step, st: StepState) -> None:
        """The step's side effect, the record written before each attempt; a transient fault
        is retried with backoff while the step's deadline, the attempts allowed and the
        absence of an operator's request permit (the last fault is raised)."""
        def retrying(state: RetryCallState) -> None:
            self._emit("step-progress", record, st, f"retrying: {state.outcome.exception()}")

        for attempt in Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=(stop_after_attempt(MAX_ACT_ATTEMPTS) | stop_at(st.deadline, self.clock)
                  | stop_when(lambda: self._requested(record))),
            wait=wait_exponential(multiplier=step.poll_interval, max=30.0),
            sleep=self.sleep, before_sleep=retrying, reraise=True,
        ):
            with attempt:
                self._check_lock()
                st.acting = True
                st.attempts += 1
                self._save(record)  # written before the side effect
                step.act(ctx, st)

    def _requested(self, record: RotationRecord) -> bool:
        """An operator's request for this rotation has arrived and is not acted on yet."""
        control = self.store.read_control(self.group.name)
        return (bool(control) and control.get("rotation_id") == record.id
                and len(control.get("requests", [])) > len(record.operator_actions))

    @staticmethod
    def _check(ctx: StepContext, step, st: StepState, wait: float) -> Progress:
        try:
            return step.check(ctx, st, wait)
        except TransientError as exc:
            return Progress.running(f"retrying: {exc}")
        except RotatorError as exc:
            return Progress.failed(str(exc))
        except Exception as exc:
            return Progress.failed(unexpected(st, exc))

    def _watch_candidate(self, ctx: StepContext, progress: Progress, wait: float) -> Progress:
        """Between traffic steps the candidate's health is still watched: by the very watch
        that verified it, which saw every instance pass and so knows a critical one."""
        watch = ctx.watch("verify", self.policy.gate)
        if watch is not None:
            # a newly published period is judged when it appears, not a poll interval later
            wait = min(wait, ctx.until_next_period(self.policy.gate))
            result = watch.poll(max(0.0, wait))
            if result.verdict is Verdict.FAILED:
                return Progress.failed(f"health gate failed: {result.reason}")
        before = ctx.record.analysis.get("evaluated_until")
        failed = ctx.analyse(self.policy.gate)
        if failed is not None:
            return failed
        if ctx.record.analysis.get("evaluated_until") != before:
            self._save(ctx.record)  # a verdict: in the record, the live view and the events
            self._emit("analysis", ctx.record, ctx.record.current_step,
                       self._analysis_note(ctx.record))
        return progress

    def _pause(self, ctx: StepContext, seconds: float) -> None:
        """Sleep until the next poll, or until the analysis has a new period to judge."""
        seconds = min(seconds, ctx.until_next_period(self.policy.gate))
        if seconds > 0:
            self.sleep(seconds)

    @staticmethod
    def _analysis_note(record: RotationRecord) -> str:
        last = record.analysis.get("last")
        if not last:
            return ""
        detail = "; ".join(last.get("failures") or []) or last.get("reason", "")
        return f"metrics {last['verdict']}: {detail}"

    def _retry(self, st: StepState) -> None:
        st.status = StepStatus.PENDING
        st.acting = False
        st.acted = False
        st.reason = ""
        st.params.pop("healthy_since", None)

    def _fail(self, record: RotationRecord, ctx: StepContext, st: StepState, reason: str) -> None:
        now = self.clock()
        st.status = StepStatus.FAILED
        st.reason = reason
        st.finished_at = now
        record.note(now, f"failed: {reason}", st.name)
        self._emit("step-failed", record, st, reason)
        if record.rolling_back:
            # A rollback step is retried until the rollback deadline; then an operator decides.
            if now < (st.deadline or math.inf):
                self._retry(st)
                st.status = StepStatus.RUNNING
                self._save(record)
                self.sleep(min(5.0 * max(1, st.attempts), 30.0))
                return
            self._stop(record, st, RotationStatus.ROLLBACK_FAILED, f"rollback could not finish: {reason}")
            return
        if st.kind in RETIRE_KINDS:
            self._stop(record, st, RotationStatus.PAUSED,
                       f"retiring the old slot failed: {reason} (the new slot serves all "
                       f"traffic; `rotate resume {record.group}` retries)")
            return
        if self.policy.on_failure == "pause" and not record.abort_requested:
            self._stop(record, st, RotationStatus.PAUSED,
                       f"{reason} (policy says pause: `rotate resume {record.group}` "
                       f"retries the step, `rotate abort {record.group}` rolls back)")
            return
        reached = self._first_build_in_traffic(ctx, record)
        if reached:
            # nothing can take the traffic back: a rollback would only meet the traffic
            # guard's refusal until its deadline, leaving the layers apart
            self._stop(record, st, RotationStatus.PAUSED,
                       f"{reason} (a first build cannot roll back: {record.candidate} {reached} "
                       f"and no other slot can take it; `rotate resume {record.group}` "
                       "retries the step)")
            return
        self._start_rollback(record, ctx, reason)

    @staticmethod
    def _first_build_in_traffic(ctx: StepContext, record: RotationRecord) -> str:
        """For a group's first build, how its candidate already reached traffic (weight on a
        layer, or healthy targets in the edge, which the guard keeps); "" otherwise."""
        if record.stable is not None:
            return ""
        try:
            state = ctx.traffic.read()
        except RotatorError:
            return ""  # unknown: the rollback finds out, step by step
        if state.slot_weight(record.candidate):
            return "carries traffic"
        if state.slot_healthy(record.candidate):
            return "has healthy targets in the edge"
        return ""

    def _stop(self, record: RotationRecord, st: StepState | None, status: RotationStatus,
              reason: str) -> None:
        """Stop for an operator, saying why."""
        record.status = status
        record.reason = reason
        self._save(record)
        self._emit("paused", record, st, reason)

    def _start_rollback(self, record: RotationRecord, ctx: StepContext, reason: str) -> None:
        ctx.close_watches()
        record.rollback_steps = plan_rollback(
            record.stable, record.candidate, self.policy.keep_failed_candidate
        )
        record.cursor = 0
        record.status = RotationStatus.ROLLING_BACK
        record.reason = reason
        record.note(self.clock(), f"rolling back: {reason}")
        self._save(record)
        self._emit("rollback", record, message=reason)

    def _finish(self, record: RotationRecord) -> None:
        record.finished_at = self.clock()
        if record.rolling_back:
            record.status = RotationStatus.ROLLED_BACK
        else:
            record.status = RotationStatus.DONE
            record.reason = ""
        record.note(record.finished_at, record.status.value)
        self._save(record)
        self._emit("finished", record, message=record.reason or record.status.value)

    # ------------------------------------------------------------------ plumbing

    def _save(self, record: RotationRecord) -> None:
        record.writes += 1
        record.updated_at = self.clock()
        self.store.save(record.to_dict())

    def _emit(self, kind: str, record: RotationRecord, step: StepState | None = None,
              message: str = "") -> None:
        self.on_event(Event(kind, record, step, message))

    def _progress(self, record: RotationRecord, st: StepState, reason: str) -> None:
        key = (st.name, reason)
        if key != self._last_progress:
            self._last_progress = key
            self._emit("step-progress", record, st, reason)
