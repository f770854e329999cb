"""How a row is measured, built once from config.yaml's `measurement` (a Snakemake job's params):

- `LoopSettings`: one configuration in one measuring process — warm-up, latency samples, back-to-back phase;
- `RowPolicy`: the row over its processes — how many, how many more where they disagree, and the thresholds its
  marks are judged with (recorded in the row, so the report judges it as it was measured);
- `Harness`: the measuring harness's own parts, each switchable (an ablation flips them by configuration).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from fmtbench import results


@dataclass(frozen=True)
class LoopSettings:
    warmup_iters: int
    warmup_seconds: float
    min_iters: int
    min_seconds: float
    max_seconds: float
    target_ci: float           # stop once the median's 95 % interval is within ± this share of it (0: off)
    throughput_seconds: float  # back-to-back phase of a dummy row (CUDA); 0: not measured
    energy_seconds: float      # ... at least this long in a row's first process, where the board's energy is read

    def stall_timeout(self) -> float:
        """The longest a measuring process may go without reaching its next stage: generous for loading, compiler
        caches and a configuration's phases, bounded so that a hang becomes a `failed` row."""
        return 300 + 3 * (self.warmup_seconds + self.max_seconds + self.throughput_seconds + self.energy_seconds)


@dataclass(frozen=True)
class RowPolicy:
    processes: int             # independent measuring processes per row
    max_processes: int         # ... up to this many for rows whose processes disagree by more than unstable_spread
    unstable_spread: float     # (max - min) / median of the processes' medians above this: the row is unstable
    noisy_iqr_ratio: float     # a process's IQR / median above this: the row is noisy
    host_bound_share: float    # the GPU busy for less than this share of a synchronised call: the host sets the row


@dataclass(frozen=True)
class Harness:
    """What the harness does besides calling the model; each part can be switched off (config
    `measurement.harness`), so what it costs is a configuration, not a code edit."""
    device_memory_sampling: bool = True  # the job process reads device memory every ms through NVML (CUDA)
    contention_watch: bool = True        # what else used the machine while a configuration was measured
    loaders_apart: bool = True           # dummy rows in processes of their own, without real loaders' workers alive
    rotate_order: bool = True            # each process takes the configurations in another order
    gc_during_measurement: bool = False  # Python's garbage collector left on while a configuration is measured
    pin_cores: bool = True               # the job runs on its own share of the cores (taskset-like affinity)
    keep_freed_memory: bool = True       # the C heap keeps freed blocks for the next call (memory.keep_freed_memory)


def _pick(cls, section: dict):
    return cls(**{item.name: section[item.name] for item in fields(cls) if item.name in section})


@dataclass(frozen=True)
class Measurement:
    loop: LoopSettings
    policy: RowPolicy
    harness: Harness

    @classmethod
    def from_config(cls, section: dict) -> Measurement:
        """`section`: config.yaml's measurement.<device> with the shared keys beside it (study.measurement_of),
        its defaults filled in by the schema."""
        return cls(_pick(LoopSettings, section), _pick(RowPolicy, section), _pick(Harness, section.get("harness", {})))

    def with_processes(self, processes: int, max_processes: int | None = None) -> Measurement:
        return replace(self, policy=replace(self.policy, processes=processes,
                                            max_processes=max(processes, max_processes or processes)))

    def record(self) -> results.Settings:
        """What the row says about how it was measured (the report's method text reads it)."""
        return results.Settings(**asdict(self.loop), **asdict(self.policy), harness=asdict(self.harness))
