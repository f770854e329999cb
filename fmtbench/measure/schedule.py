"""The job process's side of a request: which measuring processes run, in which order, and what each reported.

A process measures either the model alone (the dummy loader's rows) or end to end (the real loaders' rows, whose
workers run in it), so no model-alone figure is timed beside a real loader's idle or refilling workers (harness
`loaders_apart`; off: one process takes every loader). Every row is measured in `processes` processes, each
taking its configurations in another order (the batch sizes rotated, the loaders of a batch rotated too); dummy
rows whose processes disagree (latency or back-to-back rate) by more than `unstable_spread` get further
processes, up to `max_processes` (a real-loader row's spread is the loader's as much as the model's: reported,
not chased). The job process never initialises CUDA: its monitors watch the child from outside
(measure.monitors). A process that dies loses only the configuration it was measuring; the rest of its group is
measured by another process.

The host's CPUs are taken in turns (fmtbench.host_turns, harness `host_turns`): a CPU row's configuration is
measured on an exclusive turn (taken in its measuring process), a CUDA job's real-loader processes run on a shared
one, kept from one to the next and given back before a model-alone process; and a job's image sizes run their
model-alone processes of a round one after the other, then their real-loader processes, so a CPU row waiting for
its turn gets a stretch of model-alone processes to run beside.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fmtbench import backends, data, host_turns, isolation, row_parts, stats
from fmtbench.measure import headroom, measuring_process, monitors
from fmtbench.measure.messages import PROCESS_STAGES, Failed, Mark, Planned, Reading
from fmtbench.measure.preparation import Prepared
from fmtbench.measure.request import Request
from fmtbench.scope import Scope

log = logging.getLogger(__name__)


def order(configs: list[tuple[str, int]], index: int, count: int) -> list[tuple[str, int]]:
    """The configurations of one measuring process: batch sizes rotated a fraction further for each process,
    the loaders of a batch (which share its shape, so autotuning is paid once) kept together, rotated one further
    for each process, so that each loader comes first at its batch size in some process (torch.compile keeps a
    batch size's CUDA graph for the next loader: only the first one's memory figure is its own; reversing the
    order every other process never put the middle loader, the dummy one, first)."""
    batches = sorted({batch for _, batch in configs})
    offset = index * len(batches) // max(count, 1)
    ordered = []
    for batch in batches[offset:] + batches[:offset]:
        loaders = [loader for loader, b in configs if b == batch]
        shift = index % len(loaders)
        ordered += [(loader, batch) for loader in loaders[shift:] + loaders[:shift]]
    return ordered


@dataclass
class Gathered:
    """What the job has for one configuration so far."""
    readings: list[Reading] = field(default_factory=list)           # one per process that measured it
    entries: list[row_parts.ProcessEntry] = field(default_factory=list)  # those processes' parts of the row
    failure: tuple | None = None                                    # (status, reason, transient)
    accuracy: row_parts.Accuracy | None = None
    accuracy_error: str | None = None

    @property
    def checked(self) -> bool:
        return self.accuracy is not None or self.accuracy_error is not None


class ProcessMarks:
    """The marks of one measuring process, as they arrive: when each configuration reached its stages, and what
    each reported when done."""

    def __init__(self, monitor: monitors.Monitors):
        self.monitor = monitor
        self.done: dict = {}
        self.stages: dict = {}
        self.current: tuple[str, int] | None = None

    def __call__(self, name: str, data: dict) -> dict:
        now = isolation.elapsed()
        if name == Mark.CONFIG_START:
            self.current = (data["loader"], data["batch"])
            self.stages[self.current] = {}
        if name == Mark.CONFIG_DONE:
            key = (data["loader"], data["batch"])
            self.done[key] = data["value"]
            self.stages.setdefault(key, {})["done"] = now  # no config_start: it failed before its baseline
            self.current = None
            return {}
        if self.current is not None:
            self.stages[self.current][str(name)] = now
        return self.monitor.on_mark(name, data)


class Scheduler:
    """Plans the measuring processes of one request and gathers what they report."""

    def __init__(self, request: Request, spec, turns: host_turns.Turns | None = None):
        self.request, self.spec = request, spec
        self.turns = turns or host_turns.Turns()
        self.gathered = {key: Gathered() for key in request.configurations}
        self.monitor = monitors.for_device(request.device, request.measurement.switches)
        self.processes = 0
        self.info: dict = {}
        self.environment: dict | None = None
        self.unavailable: isolation.Outcome | None = None  # the format turned out not to run here (rounds)
        self.refuse_what_cannot_fit()

    def refuse_what_cannot_fit(self) -> None:
        """Configurations estimated to need more memory than the device has free are `oom` rows before any process
        runs (measure.headroom); the others are measured. Such a row is not retried: it would not fit next time."""
        request = self.request
        free = headroom.free_bytes(request.device)
        for (loader, batch), gathered in self.gathered.items():
            refused = headroom.refusal(request.device, batch, request.image_size, request.precision, free)
            if refused:
                gathered.failure = ("oom", refused, False)
                log.warning("%s %s batch %d: oom: %s", request.describe(), loader, batch, refused)

    def unstable(self, key) -> bool:
        """A model-alone row whose processes disagree on its latency or its back-to-back rate."""
        values = self.gathered[key].readings
        if len(values) < 2 or data.loader(key[0]).end_to_end:
            return False
        return stats.unstable([v.timing for v in values], self.request.measurement.unstable_spread)

    def groups(self, keys: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
        """The configurations each process of a round takes: the model alone apart from the real loaders (their
        workers would be alive beside the model-alone rows), unless the harness says otherwise."""
        if not self.request.measurement.switches.loaders_apart:
            return [keys] if keys else []
        scopes: dict[Scope, list] = {}
        for key in keys:
            scopes.setdefault(data.loader(key[0]).scenario, []).append(key)
        return [scopes[scope] for scope in Scope if scope in scopes]  # model alone first: no workers started yet

    def turn_kind(self, keys: list[tuple[str, int]]) -> str | None:
        """The host's turn the job takes for a measuring process over `keys`: shared where a real loader's workers
        decode on the CPU beside a CUDA row; none for the model alone on a GPU, nor for a CPU row (each of its
        configurations takes an exclusive turn in the measuring process: the job waits for nothing)."""
        if not self.request.measurement.switches.host_turns or self.request.device == "cpu":
            return None
        return host_turns.SHARED if any(data.loader(loader).end_to_end for loader, _ in keys) else None

    def take_turn(self, keys: list[tuple[str, int]]) -> row_parts.HostTurn | None:
        kind = self.turn_kind(keys)
        if kind is None:
            self.turns.release()  # a shared turn kept from a real-loader process goes back before the model alone
            return None
        taken = self.turns.take(kind)
        if taken.waited_s >= 1:
            log.info("%s waited %.1f s for its %s turn on the host", self.request.describe(), taken.waited_s, kind)
        return row_parts.HostTurn(kind=taken.kind, waited_s=taken.waited_s, coordinated=taken.coordinated)

    def run(self, keys: list[tuple[str, int]], planned_processes: int, position: int) -> isolation.Outcome | None:
        """One measuring process over `keys` (in this process's order: the `position`-th of its kind); returns an
        `unavailable` outcome if the format turned out not to run here."""
        turn = position if self.request.measurement.switches.rotate_order else 0
        return self.run_in_order(order(keys, turn, planned_processes))

    def run_in_order(self, keys: list[tuple[str, int]], checks: bool = True) -> isolation.Outcome | None:
        """One measuring process over `keys`, in this order (`checks` off: no accuracy check and no long
        back-to-back phase, for a tool that compares timings only)."""
        index = self.processes
        self.processes += 1
        plan = [Planned(loader, batch, accuracy=checks and not self.gathered[(loader, batch)].checked,
                        energy=checks and not self.gathered[(loader, batch)].readings) for loader, batch in keys]
        marks = ProcessMarks(self.monitor)
        turn = self.take_turn(keys)  # a shared one is kept for the next real-loader process
        log.info("measuring %s: process %d, %d configuration(s)", self.request.describe(), index + 1, len(plan))
        outcome = isolation.run_forked(measuring_process.measure_group, self.request, plan, on_mark=marks,
                                       spec=self.spec, timeout=self.request.measurement.stall_timeout())
        self.monitor.reset()
        if outcome.status == "unavailable":
            return outcome
        if outcome.status == "ok":
            self.info = outcome.value["backend"]
            self.environment = self.environment or outcome.value["environment"]
        stages = {str(name): round(seconds, 4) for name, seconds in outcome.stages.items()}
        stages = {name: stages[name] for name in map(str, PROCESS_STAGES) if name in stages}
        for position, planned in enumerate(plan):
            self._gather(planned, marks, outcome, index, position, len(plan), stages, turn)
        return None

    def _gather(self, planned: Planned, marks: ProcessMarks, outcome: isolation.Outcome, index: int, position: int,
                size: int, stages: dict, turn: row_parts.HostTurn | None) -> None:
        gathered, value = self.gathered[planned.key], marks.done.get(planned.key)
        if value is None:
            if outcome.status != "ok" and (marks.current == planned.key or not marks.done and not marks.stages):
                # the configuration it died (or failed to start) in
                reason = f"measuring process {index + 1}: {outcome.reason}"
                gathered.failure = (outcome.status, reason, outcome.transient)  # an oom the library said would repeat
            return  # not reached: measured by a later process
        if isinstance(value, Failed):
            gathered.failure = (value.status, value.reason, False)
            return
        gathered.readings.append(value)
        gathered.entries.append(row_parts.ProcessEntry(
            process=index + 1, position=position + 1, configurations=size, stages_s=stages,
            config_stages_s={k: round(v, 4) for k, v in marks.stages[planned.key].items()},
            first_run_ms=value.first_run_ms, memory=value.memory, gpu=value.gpu, loader=value.loader,
            contention=value.contention, turn=value.turn or turn))
        if not gathered.checked:
            gathered.accuracy, gathered.accuracy_error = value.accuracy, value.accuracy_error
        timed = value.timing
        log.info("-> %s batch %d: median %.3f ms over %d calls (stopped: %s)%s", planned.loader, planned.batch,
                 timed.summary.median, timed.summary.count, timed.stop,
                 f", {timed.throughput.images_per_s:.0f} img/s back to back" if timed.throughput else "")

    def steps(self):
        """The measuring processes step by step, yielding (True) after each step: `processes` rounds over every
        configuration, each round a step per scope (the model alone, then end to end; one step for every loader when
        the harness keeps them together): a configuration a process did not reach is measured by the next one. Then
        more processes for the model-alone rows whose processes disagree, up to `max_processes`, a step each. A
        format that turns out not to run here ends it, its outcome in `self.unavailable`."""
        settings = self.request.measurement
        keys = list(self.gathered)
        apart = settings.switches.loaders_apart
        counts = {scope: self.process_count(scope) for scope in Scope}
        for round_index in range(max(counts.values())):
            for scope in Scope:
                if (apart or scope == next(iter(Scope))) and round_index < counts[scope]:
                    if not self._run_round(keys, round_index, scope if apart else None):
                        return
                yield True  # a step for every scope of every round: a job's image sizes keep in step
        extra = settings.processes
        while True:
            pending = [k for k in keys if self.gathered[k].failure is None and self.unstable(k)
                       and len(self.gathered[k].readings) < settings.max_processes]
            if not pending:
                return
            for group in self.groups(pending):
                self.unavailable = self.run(group, settings.max_processes, extra)
                if self.unavailable:
                    return
            extra += 1
            yield True

    def process_count(self, scope: Scope) -> int:
        """Measuring processes per row of `scope`: `processes`, or `end_to_end_processes` for the real loaders' rows
        where they run apart from the model alone."""
        settings = self.request.measurement
        if scope == Scope.END_TO_END and settings.switches.loaders_apart and settings.end_to_end_processes:
            return settings.end_to_end_processes
        return settings.processes

    def _run_round(self, keys: list, round_index: int, scope: Scope | None) -> bool:
        """The round's processes over the configurations of `scope` (None: every one) that have fewer readings than
        the round's number; a configuration a crashed process left goes to another process (three tries). False if
        the format turned out not to run here."""
        settings = self.request.measurement
        for _ in range(3):
            pending = [k for k in keys if self.gathered[k].failure is None
                       and len(self.gathered[k].readings) <= round_index
                       and (scope is None or data.loader(k[0]).scenario == scope)]
            if not pending:
                return True
            for group in self.groups(pending):
                self.unavailable = self.run(group, self.process_count(scope) if scope else settings.processes,
                                            round_index)
                if self.unavailable:
                    return False
        return True


@dataclass
class Measured:
    """What the processes of a request gathered per configuration, the session's settings in effect and the
    environment they ran in; or the outcome that kept every configuration from being measured."""
    gathered: dict                      # (loader, batch) -> Gathered
    info: dict
    environment: dict | None
    failure: isolation.Outcome | None


def measure_together(prepared: list[Prepared]) -> list[Measured]:
    """The measuring processes of several requests (a job's image sizes), their steps interleaved: every request's
    model-alone processes of the first round, then every request's end-to-end ones, then the second round, and so
    on. A row's processes are then spread over the job instead of back to back, so a drift of the host (the CPU's
    speed moved between two runs on the H200) shows in the row's range over its processes instead of moving the
    whole row; and a CUDA job's real-loader processes follow one another under one shared turn on the host
    (host_turns), its model-alone ones too, without one: a CPU row waiting for its turn runs beside those."""
    turns = host_turns.Turns()
    schedulers = [None if item.failure is not None else
                  Scheduler(item.request, backends.spec(item.request.backend), turns) for item in prepared]
    active = [scheduler.steps() for scheduler in schedulers if scheduler is not None]
    try:
        while active:
            active = [steps for steps in active if next(steps, False)]  # one step each, until all end
    finally:
        turns.close()
    return [Measured({}, {}, None, item.failure) if scheduler is None else
            Measured(scheduler.gathered, scheduler.info, scheduler.environment, scheduler.unavailable)
            for item, scheduler in zip(prepared, schedulers)]
