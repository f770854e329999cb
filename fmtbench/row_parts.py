"""The typed parts of a row (results.Row): what each measuring process read for a configuration — memory, GPU,
loader — and the row's summaries of them (rates, memory, energy and clocks, accuracy, contention).

One field list each; the result schema is derived from them (typedjson). Field names are the JSON keys."""
from __future__ import annotations

from dataclasses import dataclass

from fmtbench.scope import Scope
from fmtbench.typedjson import doc

NUMBER = "number"
# A row's processes agree on its memory when their steady figures are within this share or these MB of each other.
MEMORY_AGREE = (0.02, 8.0)


def memory_agree_text() -> str:
    share, megabytes = MEMORY_AGREE
    return f"{share * 100:g} % or {megabytes:g} MB"


@dataclass(frozen=True, kw_only=True)
class MsSummary:
    median: float = doc("ms")
    mean: float = doc("ms")
    p90: float = doc("ms")
    max: float = doc("ms")


@dataclass(frozen=True, kw_only=True)
class MemoryReading:
    """One process's memory figure for one configuration (memory.py says how it is taken)."""
    method: str = doc("how memory was read")
    baseline_mb: float = doc("device memory in use (CUDA) or RSS (CPU) at the configuration's own baseline",
                             minimum=0)
    peak_mb: float = doc("the highest reading from the configuration's baseline to its end", minimum=0)
    allocated_mb: float = doc("the model's load in the process + the configuration's peak growth over its own "
                              "baseline: what a fresh process measures for it", minimum=0)
    load_mb: float | None = doc("growth from the process baseline (context and handles made) to after loading",
                                omitted=True, minimum=0)
    first_run_mb: float | None = doc("load + growth after the first run at the configuration's shape", omitted=True,
                                     minimum=0)
    first_call_peak_mb: float | None = doc("load + peak growth through the first call and the warm-up (autotuning, "
                                           "graph capture: what the first call at a new shape costs)", omitted=True,
                                           minimum=0)
    steady_mb: float | None = doc("load + peak growth over the timed phases: what the running model needs (a "
                                  "table's memory figure)", omitted=True, minimum=0)
    torch_max_allocated_mb: float | None = doc("torch's caching allocator: largest allocated", omitted=True,
                                               minimum=0)
    torch_max_reserved_mb: float | None = doc("torch's caching allocator: largest reserved", omitted=True, minimum=0)
    shared: str | None = doc("why the figure is a lower bound: state an earlier configuration made was in its "
                             "baseline (torch.compile's recorded graph)", omitted=True)


@dataclass(frozen=True, kw_only=True)
class MemorySummary(MemoryReading):
    """The row's memory: the reading of the process with the median figure, every process's figure beside it;
    its steady_mb and first_call_peak_mb are the medians over the processes that measured the configuration alone."""
    allocated_mb_processes: list[float] = doc("every process's allocated_mb, in the order they ran")
    steady_mb_processes: list[float] | None = doc("every process's steady_mb, in the order they ran", omitted=True)
    steady_disagree: bool | None = doc(f"the processes' steady figures differ by more than {memory_agree_text()}: "
                                       "the row's memory is their range, not one figure", omitted=True)
    chosen_from: str | None = doc("which processes steady_mb comes from: first (the median over the processes where "
                                  "the configuration went first) or median (none did: the median over them, which can "
                                  "depend on what ran before it in its processes)",
                                  enum=["first", "median"], omitted=True)


@dataclass(frozen=True, kw_only=True)
class Spread:
    min: float | None = doc("lowest sample")
    median: float | None = doc("median sample")
    max: float | None = doc("highest sample")


@dataclass(frozen=True, kw_only=True)
class Energy:
    joules: float | None = doc("the board's energy counter over the back-to-back phase")
    seconds: float = doc("length of that phase", minimum=0)


@dataclass(frozen=True, kw_only=True)
class GpuReading:
    """NVML, read by the job process while one process measured one configuration."""
    energy: Energy | None = doc("over the back-to-back phase, where one ran")
    sm_clock_mhz: Spread | None = doc("SM clock sampled during timing")
    power_w: Spread | None = doc("board power sampled during timing")
    power_limit_w: float | None = doc("enforced power limit")
    samples: int = doc("clock/power samples taken", minimum=0)
    clock_event_reasons: list[str] = doc("clock event reasons seen (throttle reasons first)")
    throttled: bool = doc("a power or thermal limit held the clocks down")


@dataclass(frozen=True, kw_only=True)
class LoaderStats:
    """What a real loader's source recorded over one process's timed phase (data.py)."""
    data_wait_ms: MsSummary | None = doc("how long each batch waited for data")
    batches_timed: int = doc("batches in the timed phase", minimum=0)
    producer: str = doc("who makes the batches")
    producers: int = doc("how many producers", minimum=0)
    concurrent: bool = doc("the producers run beside the model (workers, decode threads)")
    produce_ms_per_batch: MsSummary | None = doc("the producers' time per batch")
    decode_capacity_fps: float | None = doc("images per second the producers can make")
    distinct_images_per_batch: int | None = doc("distinct images a batch held (the loaders cycle through the set)")
    end_to_end_fps: float | None = doc("images / wall time of the timed phase")
    fetch_ms_per_batch: MsSummary | None = doc("GPU decode: time to take a batch's bytes from the workers",
                                               omitted=True)


@dataclass(frozen=True, kw_only=True)
class HostTurn:
    """The turn on the host's CPUs a measuring process ran on (fmtbench.host_turns)."""
    kind: str = doc("exclusive (a CPU row) or shared (a real loader's workers beside a CUDA row)",
                    enum=["exclusive", "shared"])
    waited_s: float = doc("how long the job waited for it before the process started, s", minimum=0)
    coordinated: bool = doc("false: the host's lock file could not be opened, so nothing was waited for")


@dataclass(frozen=True, kw_only=True)
class ProcessEntry:
    """One measuring process's part of a row."""
    process: int = doc("the process's index among the job's processes (1-based)", minimum=1)
    position: int = doc("where this configuration stood in the process's group (1-based)", minimum=1)
    configurations: int = doc("configurations the process measured", minimum=1)
    stages_s: dict[str, float] = doc("when the process reached its stages: s since its fork (forked_at: epoch s)")
    config_stages_s: dict[str, float] = doc("when this configuration reached its stages, s since the fork")
    first_run_ms: float = doc("the configuration's first call (autotuning, graph capture), ms")
    memory: MemoryReading = doc("its memory reading")
    gpu: GpuReading | None = doc("NVML readings (CUDA rows where NVML answers)")
    loader: LoaderStats | None = doc("the real loader's statistics")
    contention: dict | None = doc("what else used the machine while it was timed (contention.Watch)")
    turn: HostTurn | None = doc("the host's turn the process ran on (fmtbench.host_turns; none: it took none, or a "
                                "row of schema 6 or earlier)", omitted=True)


@dataclass(frozen=True, kw_only=True)
class ModelRates:
    """Dummy loader: the model alone."""
    model_fps: float = doc("images / s back to back (the model alone); on the CPU batch / median call time",
                           exclusiveMinimum=0)
    basis: str = doc("what model_fps is", enum=["back_to_back", "latency"])
    latency_fps: float | None = doc("batch / median latency")
    end_to_end_fps: None = doc("no end-to-end figure without a loader")


@dataclass(frozen=True, kw_only=True)
class PipelineRates:
    """Real loaders: the model under the loader's load and the pipeline end to end."""
    model_fps: float = doc("batch / median model time measured in the same run under the loader's load",
                           exclusiveMinimum=0)
    basis: str = doc("what model_fps is", enum=[Scope.END_TO_END.value])
    latency_fps: None = doc("not measured under load")
    end_to_end_fps: float | None = doc("median over processes of images / wall time of the timed phase")
    end_to_end_spread: float = doc("(max - min) / median of the processes' end-to-end rates", minimum=0)
    decode_capacity_fps: float | None = doc("images per second the producers (workers or GPU decoder) made")
    capacity_spread: float | None = doc("(max - min) / median of the processes' decode capacities")
    expected_fps: float | None = doc("min(model FPS, decode capacity), or their serial combination without "
                                     "workers")
    pipeline_efficiency: float | None = doc("end-to-end / expected")
    stalled: bool = doc("end-to-end below results.PIPELINE_EFFICIENCY of expected")
    above_model_fps: bool = doc("end-to-end above the same run's model figure")
    above_capacity: bool | None = doc("end-to-end above the loader's decode capacity by more than "
                                      "results.CAPACITY_MARGIN: what the loader's producers made does not account "
                                      "for it", omitted=True)
    data_wait_ms: MsSummary | None = doc("median over the processes of the batches' wait for data")
    producer: str = doc("who makes the batches")
    distinct_images_per_batch: int | None = doc("distinct images a batch held")


@dataclass(frozen=True, kw_only=True)
class ClockRange:
    min: float = doc("MHz")
    max: float = doc("MHz")


@dataclass(frozen=True, kw_only=True)
class GpuSummary:
    energy_j_per_image: float | None = doc("median over the processes of energy / images of the back-to-back "
                                           "phase")
    energy_method: str = doc("how the energy was read")
    energy_phase_seconds: float | None = doc("length of the back-to-back phase the energy was read over")
    sm_clock_mhz: ClockRange | None = doc("SM clock range seen during timing")
    power_w_max: float | None = doc("highest board power seen during timing")
    power_limit_w: float | None = doc("enforced power limit")
    clock_event_reasons: list[str] = doc("clock event reasons seen")
    throttled: bool = doc("a power or thermal limit held the clocks down in a process")


@dataclass(frozen=True, kw_only=True)
class Accuracy:
    reference: str = doc("what the logits were compared with")
    images: int = doc("images compared", minimum=1)
    batch_size: int = doc("the batch size they ran at", minimum=1)
    arithmetic: str = doc("the arithmetic the limit is computed for", enum=["fp16", "tf32", "fp32"])
    max_rel_error: float | None = doc("largest relative L2 error of an image's logits")
    median_rel_error: float | None = doc("median of those errors")
    rel_error_limit: float = doc("the limit for this arithmetic", exclusiveMinimum=0)
    within_limit: bool = doc("every image within the limit, no non-finite logits")
    non_finite_images: int = doc("images with non-finite logits", minimum=0)
    max_abs_diff: float | None = doc("largest absolute difference of a logit")
    mean_abs_diff: float | None = doc("mean absolute difference")
    top1_agreement_pct: float = doc("images whose top-1 class agrees with the reference", minimum=0, maximum=100)
    reference_top1_share: float = doc("largest share of images the reference gives one class", minimum=0,
                                      maximum=1)


@dataclass(frozen=True, kw_only=True)
class ContentionSummary:
    """What else used the machine while the row was timed, over its processes (each process's own record is
    under processes[].contention)."""
    contended: bool = doc("a process of the row was timed while other processes used its cores or its GPU")
    contended_processes: int = doc("how many", minimum=0)
    processes: int = doc("processes with a record", minimum=0)
    others_share_max: float | None = doc("largest share of the cores' capacity others used")
    steal_share_max: float | None = doc("largest steal share")
    elsewhere_share_max: float | None = doc("largest share of the whole machine other processes used (anywhere)",
                                            omitted=True)
    loadavg_1min_max: float | None = doc("largest 1-minute load average")
    gpu_other_processes_max: int | None = doc("most other processes seen on the GPU", minimum=0)
    busiest_others: list[dict] = doc("the busiest other processes")
    method: str = doc("how it was judged")
