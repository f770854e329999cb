"""What the tables' columns and marks mean ("Reading the tables"), said once for all of them and only for what
the tables hold: the marks some rows carry (a mark every row of a kind carries is said once, apart), the device
time and the CUDA words only where CUDA rows ran, with the thresholds these rows were judged with."""
from __future__ import annotations

import pandas as pd

from fmtbench import results, row_parts
from fmtbench.report import marks
from fmtbench.report.cells import OPTIONAL_COLUMNS
from fmtbench.report.frame import ROW
from fmtbench.report.labels import threshold_text
from fmtbench.scope import Scope

MODEL_LEGEND = (
    "*Model alone (dummy loader).* *latency p50* = median over the row's processes of each process's median time "
    "of one call{synchronised}{marks}; *p99* = median over the processes of their 99th percentile; "
    "*spread* = (slowest − fastest) / median of the per-process medians (number of processes), or, with one "
    "process, the interval of its median (its coverage where below 95 %); *throughput* = {throughput}; "
    "*speedup* = this throughput / that of "
    "{baseline} on the same device, size and batch (with the marks of either row); *memory* = the configuration's"
    " own, what it needs in a process that ran nothing before it (the median over its processes where it went "
    "first, else the median over them, which can depend on what ran before it): the model's load + the "
    "configuration's peak growth of {memory} over its own baseline during its timed phases, what the "
    "running model needs (its first call's autotuning peak is in the CSV's `memory_first_call_mb`); a range where"
    " its processes disagree by more than {memory_agree}; – where no process measured the configuration alone "
    "(each ran it after another loader at its batch size, sharing torch.compile's recorded graph, whose pool was "
    "then in the baseline; the CSV's `memory_shared_mb` holds that lower bound); *rel. error* = largest relative "
    "L2 error of an image's logits against PyTorch fp32 on the CPU, at this row's batch size; *library default* ="
    " the fp32 math the library uses out of the box. (The seed study called the format `function` and the memory "
    "`allocated_memory`.)")
E2E_LEGEND = (
    "*End to end (real loaders).* *end-to-end* = images / wall time of the timed phase after the batches the loader "
    "held ready at its start (whole rounds of the loader's workers, batches fetched and run back to back, waiting "
    "for data included{marks}); *decode capacity* = images / s "
    "the loader's producers made in the same processes (the host's figure: per loader, size and batch in "
    "*Decode capacity* below); *bound* = the slower stage: `loader` where that capacity is below the model's rate "
    "under load, so the host's decoding sets the end-to-end rate, not the format, else `model` (in brackets: "
    "end-to-end / capacity); *model under load* = median time of the model's call in the same run, {under_load}, "
    "and the rate it allows; *spread* over the processes of that model time. (The seed study called the "
    "loader `dataloader_type`.)")
DEVICE_LEGEND = (
    " *device time* (CUDA rows) = median over the processes of one call's time on the GPU with its launches hidden "
    "(a spin kernel queued first holds the GPU while the host queues the call), the figure that reproduces "
    "between runs where a host-bound row's wall figures do not (`°`: none, its library ran on a CUDA stream of its "
    "own, ONNX Runtime's own CUDA graphs, which the harness cannot time so); a speedup marked `dev` is the "
    "baseline's device time / this row's, used where either row is ◊.")
UNHIDDEN_LEGEND = (
    " `≤`: an upper bound, in some process a sample's launches were not hidden by any spin (the host queued the call "
    "slower than the longest spin), so that sample holds host time.")
CPU_RANGE_LEGEND = (
    " On the CPU a row's latency and throughput are the range over its processes: the host's CPU speed moves between "
    "runs and within one (docs/method.md), so they are this host's at the time; the speedup compares the medians.")
LOADER_MEMORY_LEGEND = (
    " *of which the loader* = a GPU-decode row's memory minus that of the dummy-loader row of the same format, "
    "precision, size and batch (the model's own): its decoder's batches in flight, apart from the model's.")
# By whether CUDA rows ran: (the timed call, back-to-back throughput, memory, the model under load).
CUDA_WORDS = (
    " between two device-wide synchronisations",
    "images / s with calls queued back to back, one synchronisation per block of calls (the model alone, as a "
    "serving loop runs it; on the CPU, where a call is synchronous, batch / median call time)",
    "device memory in use (CUDA) or of the process's resident set (CPU)",
    "from CUDA events on the model's stream (the loader's stream is not waited for; on the CPU perf_counter around "
    "the call)")
CPU_WORDS = ("", "batch / median call time (a call on the CPU is synchronous: the model alone, as a serving loop "
                 "runs it)", "the process's resident set", "perf_counter around the call")


def _meanings(ok: pd.DataFrame) -> dict[str, str]:
    """What each mark says, with the thresholds these rows were judged with."""
    gpu = " or its GPU" if ok["device"].eq("cuda").any() else ""
    return {
        "~": "a process was noisy",
        "‡": f"the processes disagree by more than {threshold_text(ok[ROW], 'unstable_spread')} in "
             "latency or in back-to-back rate",
        "†": "timed while the GPU reported power or thermal clock limits",
        "◊": f"host-bound: in some process the GPU was busy for less than "
             f"{threshold_text(ok[ROW], 'host_bound_share')} of a call or of its back-to-back phase, so its latency "
             "and throughput are "
             "this host's launch rate, shown as the range over its processes (the low end what the format does on a "
             "quiet host) and ranked by no finding",
        "§": f"measured while other processes used its cores, the machine (CPU rows){gpu}",
        "*": f"below {results.PIPELINE_EFFICIENCY:.0%} of min(model under load, decode capacity)",
        "^": "above the same run's model figure",
        "!": f"above the decode capacity by more than {results.CAPACITY_MARGIN:.0%}",
    }


def _marks(parts, which: dict[str, str], meanings: dict[str, str]) -> str:
    """`~ a process was noisy, …` (each mark in backquotes): the marks of `which` some rows carry in their cells;
    `parts`: (rows, the marks their cells leave out) of each kind of table."""
    return ", ".join(f"`{mark}` {meanings[mark]}" for mark, column in which.items()
                     if any(mark not in omit and marks.flagged(rows, column).any() for rows, omit in parts))


def legend_texts(ok: pd.DataFrame, baseline: dict) -> dict[str, str]:
    """The legend of each kind of table these rows fill (fmtbench.scope), with the thresholds they were judged
    with."""
    every, meanings = marks.on_every_row(ok), _meanings(ok)
    model, real = marks.split(ok)
    cuda = ok["device"].eq("cuda").any()
    synchronised, throughput, memory, under_load = CUDA_WORDS if cuda else CPU_WORDS
    # the model marks stand in both tables (beside the model figure of an end-to-end row too)
    alone, end_to_end = Scope.MODEL_ALONE, Scope.END_TO_END
    shown = {alone: _marks([(model, every[alone]), (real, every[end_to_end])], marks.MODEL_MARKS, meanings),
             end_to_end: _marks([(real, every[end_to_end])], marks.E2E_MARKS, meanings)}
    texts = {}
    if not model.empty:
        unhidden = "gpu_unhidden" in model and pd.to_numeric(model["gpu_unhidden"]).gt(0).any()
        cpu_range = any(marks.host_range(row) for _, row in model[model["device"].eq("cpu")].iterrows())
        texts[alone] = MODEL_LEGEND.format(
            synchronised=synchronised, marks=f" ({shown[alone]})" if shown[alone] else "",
            throughput=throughput, memory=memory, baseline=f"{baseline['format']} {baseline['precision']}",
            memory_agree=row_parts.memory_agree_text()) + (DEVICE_LEGEND if cuda else "") + (
            UNHIDDEN_LEGEND if unhidden else "") + (CPU_RANGE_LEGEND if cpu_range else "")
    if not real.empty:
        texts[end_to_end] = E2E_LEGEND.format(marks=f"; {shown[end_to_end]}" if shown[end_to_end] else "",
                                         under_load=under_load) + (
            LOADER_MEMORY_LEGEND if OPTIONAL_COLUMNS["loader_memory_text"](real) else "")
    for kind, omitted in every.items():
        if kind in texts and omitted:
            texts[kind] += (f" Every {marks.KINDS[kind]} row carries " + ", ".join(
                f"`{mark}` ({meanings[mark]})" for mark in sorted(omitted)) + ": the cells leave it out.")
    return texts


def section(ok: pd.DataFrame, baseline: dict) -> list[str]:
    """"Reading the tables": what the columns and marks of the tables below mean, once for all of them."""
    texts = legend_texts(ok, baseline)
    return ["## Reading the tables", "", *[line for text in texts.values() for line in (text, "")]] if texts else []
