"""What passes between a measuring process and its job: the stages it marks, the configurations it is given and
what it reads for each (typed, flowing one way: child to parent).

A measuring process marks each stage it reaches (`isolation.mark`); the job process's monitors answer the
marks (their readings are taken there, outside the measured process), and the process reports each
configuration as soon as it is done (`CONFIG_DONE`, with a `Reading` or a `Failed`), so a crash loses only the
configuration it was in."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fmtbench import row_parts, stats


class Mark(StrEnum):
    """Stages of a measuring process (the first four and CLOSED once per process, the others per
    configuration). Their times are recorded in every row (`stages_s`, `config_stages_s`)."""
    STARTED = "started"
    BASELINE = "baseline"          # libraries, CUDA context and handles ready: the process's memory baseline
    LOADED = "loaded"              # the model loaded
    CONFIG_START = "config_start"  # a configuration's own baseline (its input made, its loader not started)
    FIRST_RUN = "first_run"        # its first call at its shape done (autotuning, graph capture)
    TIMING_START = "timing_start"  # warm-up done: timed phases begin
    ENERGY_START = "energy_start"  # the back-to-back phase (the board's energy is read over it)
    ENERGY_END = "energy_end"
    CONFIG_END = "config_end"      # its timed phases done: the monitors reply with their readings
    CONFIG_DONE = "config_done"    # its reading (or failure) reported
    WAITING = "waiting_for_turn"   # (every 30 s) a CPU row still waits for its turn on the host: not a hang
    CLOSED = "closed"              # every configuration of the process done


# The stages of a process (not of one configuration) that a row records, with the parent's own "result",
# "exited" and "forked_at" (isolation.Outcome.stages).
PROCESS_STAGES = (Mark.STARTED, Mark.BASELINE, Mark.LOADED, Mark.CLOSED, "result", "exited", "forked_at")


@dataclass(frozen=True)
class Planned:
    """One configuration in a measuring process's group."""
    loader: str
    batch: int
    accuracy: bool   # check the logits (until a process of the row has)
    energy: bool     # the back-to-back phase lasts at least energy_seconds (the row's first process)

    @property
    def key(self) -> tuple[str, int]:
        return self.loader, self.batch


@dataclass(frozen=True)
class Reading:
    """One configuration as one measuring process measured it."""
    timing: stats.ProcessTiming
    clock: str
    first_run_ms: float
    memory: row_parts.MemoryReading
    gpu: row_parts.GpuReading | None
    loader: row_parts.LoaderStats | None
    accuracy: row_parts.Accuracy | None
    accuracy_error: str | None       # why the accuracy check could not run (the measurement stands)
    contention: dict | None
    turn: row_parts.HostTurn | None = None  # a CPU row's exclusive turn on the host (fmtbench.host_turns)


@dataclass(frozen=True)
class Failed:
    """One configuration a measuring process could not measure (the rest of its group goes on)."""
    status: str   # oom | failed
    reason: str
