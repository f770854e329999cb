"""How the rows were measured ("How it was measured"), as the rows record it (their settings and what their
processes did), not as the code is now; only what applies to the rows that ran (no CUDA words where no CUDA row
ran, the intervals' coverage for the process counts the rows had)."""
from __future__ import annotations

import pandas as pd

from fmtbench import accuracy, backends, data
from fmtbench.report.frame import ROW
from fmtbench.report.labels import span
from fmtbench.scope import Scope
from fmtbench.stats import CONFIDENCE, median_ci
from fmtbench.workflow import gpus


def _interval_text(ok: pd.DataFrame) -> str:
    """What a row's figure and interval are, with the coverage of the process counts the rows had."""
    counts = sorted(set(ok["processes"].dropna().astype(int)))
    several = [n for n in counts if n >= 2]
    text = "A row's figure is the median of its processes' medians"
    if several:
        text += ("; its interval is the distribution-free interval of that median from the processes' medians (its "
                 "coverage: " + ", ".join(f"{median_ci(range(n))[2]:.0%} from {n} processes" for n in several)
                 + (f"; {CONFIDENCE:.0%} needs 6)" if max(several) < 6 else ")"))
    if 1 in counts:
        text += "; a row of one process has the interval of that process's median over its samples"
    return text + "; `pooled_*` CSV columns pool every sample."


def _process_text(harness: dict | None, device: str) -> str:
    """How the rows' measuring processes were laid out, as their recorded harness switches say."""
    if not harness:
        return ("A process loads the model once and measures every batch size and loader of its job (how the "
                "harness was set was not recorded: written before rows recorded it).")
    layout = ("The dummy loader's rows (the model alone) are measured in processes of their own and the real "
              "loaders' in others, so no model-alone figure is timed beside a real loader's workers; a process "
              if harness.get("loaders_apart") else "A process measures every batch size and loader of its job, the "
              "real loaders' workers alive throughout; it ")
    order = ("in an order rotated between processes" if harness.get("rotate_order")
             else "in the same order in every process")
    parts = [f"{layout}loads the model once and takes its configurations {order}."]
    memory = (("device memory is sampled every ms" if harness.get("device_memory_sampling")
               else "device memory is read at each stage") + ", and ") if device == "cuda" else ""
    parts.append("Python's garbage collector is " + ("on" if harness.get("gc_during_measurement") else
                                                     "off while a configuration is measured (as timeit does)")
                 + (", and what a process holds once its model is loaded is frozen out of its collections (gc.freeze)"
                    if harness.get("freeze_after_load") else "")
                 + "; the job is " + ("pinned to its share of the cores" if harness.get("pin_cores") else
                                      "not pinned") + "; " + memory + "what else used the machine is "
                 + ("watched" if harness.get("contention_watch") else "not watched") + ".")
    if "keep_freed_memory" in harness:  # recorded since 2026-12-06
        parts.append("Its C heap " + ("keeps the memory a call frees for the next call (as jemalloc and tcmalloc do; "
                                      "a CPU row's resident peak includes what it keeps)"
                                      if harness["keep_freed_memory"] else
                                      "returns large freed blocks to the kernel (glibc's default), so each call "
                                      "faults its activations in again") + ".")
    if device == "cuda" and "release_first_call_cache" in harness:  # recorded since 2026-12-07
        parts.append("After a configuration's first call, torch's allocator " + (
            "gives what the call left unused in its cache (cuDNN's autotuning workspaces) back to the driver, so the "
            "steady memory figure is the same whether or not the shape was tuned earlier in the process"
            if harness["release_first_call_cache"] else
            "keeps what the call left in its cache: the configuration that tuned a shape holds the tuning's "
            "workspaces in its steady memory figure") + ".")
    return " ".join(parts)


def _turn_text(harness: dict | None, device: str, rows: pd.Series, cuda: bool) -> str:
    """The host's turns the rows' processes ran on (fmtbench.host_turns), as their processes recorded them (`cuda`:
    whether CUDA rows ran too: no CUDA words otherwise)."""
    if not harness or "host_turns" not in harness:  # recorded since 2026-12-07
        return ""
    if not harness["host_turns"]:
        return (" A CPU job claimed every core: nothing of the study ran beside it." if device == "cpu" else "")
    # a CPU row's turn is its configuration's (one per row and process), a CUDA real-loader process's its process's
    cpu = device == "cpu"
    turns = {(row.config.format, row.config.precision, row.config.image_size, entry.process)
             + ((row.config.loader, row.config.batch_size) if cpu else ()): entry.turn
             for row in rows for entry in row.processes if entry.turn is not None}
    if not turns:
        return ""
    waited = [turn.waited_s for turn in turns.values()]
    what = "configuration measurements" if cpu else "processes"
    wait = (f"; {sum(w >= 1 for w in waited)} of its {len(waited)} {what} waited for it, "
            f"{sum(waited):.0f} s in all" if any(w >= 1 for w in waited) else "")
    lost = (" (on some, the host's lock file could not be opened: nothing was waited for)"
            if not all(turn.coordinated for turn in turns.values()) else "")
    if device == "cpu":
        beside = (": no CUDA job's real-loader workers, export or reference ran meanwhile, while a CUDA job's "
                  "model-alone processes may have (their host thread is among the others each configuration's watch "
                  "counts)" if cuda else ": no export or reference of the study ran meanwhile")
        return (" Each configuration was measured on the host's exclusive turn (fmtbench/host_turns.py)"
                f"{beside}{wait}{lost}.")
    return (" A real-loader process ran on a shared turn on the host: no CPU row was timed beside its workers"
            f"{wait}{lost}.")


def _settings_lines(device: str, rows: pd.DataFrame, cuda: bool) -> list[str]:
    """What the rows of one device record about how they were measured, and what their processes did."""
    lines = []
    for _, group in rows.groupby("measurement", sort=True):
        settings = group[ROW].iloc[0].measurement
        counts = group["processes"].value_counts().sort_index()
        spread = ", ".join(f"{int(n)} process{'es' if n > 1 else ''}: {count} rows" for n, count in counts.items())
        line = (f"- **{device.upper()} rows ({len(group)}):** measured in {settings.processes} "
                f"process{'es' if settings.processes > 1 else ''} each")
        end_to_end = getattr(settings, "end_to_end_processes", None)  # recorded since 2026-12-07
        if end_to_end and end_to_end != settings.processes and (group["timing_kind"] == Scope.END_TO_END.value).any():
            line += f" ({end_to_end} for a real loader's rows)"
        if settings.max_processes > settings.processes:
            line += (f", up to {settings.max_processes} for rows whose processes disagreed by more than the "
                     "unstable share")
        line += f" ({spread}). " + _process_text(settings.harness, device) + _turn_text(
            settings.harness, device, group[ROW], cuda) + (
            f" Per configuration: warm-up ≥ {settings.warmup_iters} calls and ≥ {settings.warmup_seconds} s")
        model = group[group["timing_kind"] == Scope.MODEL_ALONE.value]
        if not model.empty:
            stops = ", ".join(sorted(set(",".join(model["stops"].dropna()).split(","))))
            target = (f"then until the median's 95 % interval is within ±{settings.target_ci:.0%} of it or "
                      f"{settings.max_seconds} s had passed" if settings.target_ci > 0 else
                      f"no interval target, at most {settings.max_seconds} s")
            line += (f"; dummy loader: latency samples ≥ {settings.min_iters} calls and ≥ "
                     f"{settings.min_seconds} s, {target} — in this run "
                     f"{span(model['iterations'] / model['processes'], '.0f')} calls per process over "
                     f"{span(model['timed_seconds_min'].tolist() + model['timed_seconds_max'].tolist(), '.3g')} s "
                     f"(stopped on: {stops}; `min_iters` is a floor even past the time cap)")
            if model["gpu_ms"].notna().any():
                line += ("; then the device time of a few calls with their launches hidden (each behind a spin "
                         "kernel, taken again behind a longer one where the GPU reached the call before the host had "
                         "queued all of it), against which a call's time says whether the host sets it")
            if model["throughput_fps"].notna().any() and device == "cuda":
                energy = (f" (≥ {settings.energy_seconds} s in a row's first process)" if settings.energy_seconds
                          > settings.throughput_seconds else "")
                line += (f"; then calls back to back for ≥ {settings.throughput_seconds} s{energy}, over which the "
                         "board's energy is read in every process")
        real = group[group["timing_kind"] == Scope.END_TO_END.value]
        if not real.empty:
            line += (f"; real loaders: the batches the loader held ready, then whole rounds of their workers back "
                     f"to back ({span(real['iterations'] / real['processes'], '.0f')} batches per process over "
                     f"{span(real['timed_seconds_min'].tolist() + real['timed_seconds_max'].tolist(), '.3g')} s; "
                     "the end-to-end rate over those the loader had to make)")
        lines.append(line + ".")
    return lines


def section(ok: pd.DataFrame, baseline: dict) -> list[str]:
    """The method as the rows record it (their settings and what their processes did), not as the code is now."""
    lines = ["### How it was measured", ""]
    cuda = ok["device"].eq("cuda").any()
    for device in ("cuda", "cpu"):
        rows = ok[(ok["device"] == device) & ok["measurement"].notna()]
        if not rows.empty:
            lines += _settings_lines(device, rows, cuda)
    lines += [
        "- **Shared within a measuring process** (as in a long-running server): the imported libraries and their "
        "handles and thread pools (made before the process's memory baseline"
        + (", with the CUDA context on CUDA rows" if cuda else "") + "), the loaded model and its compiled code, "
        "autotuning results per input shape, and the real loaders' DataLoader workers (started once per process and "
        "kind of loader, before the first configuration's baseline; a task is a few images, so the same workers serve "
        "every batch size). **Not shared:** inputs, each configuration's batches"
        + (" and GPU-decode threads, CUDA graphs (captured anew per configuration; torch.compile keeps a batch "
           "size's graph for the next loader at that size, and its row's memory record says so), the allocator's "
           "cache" if cuda else "") + " and ONNX Runtime's arena (released between configurations), so each "
        "configuration's memory figure is its own.",
        "- **latency** is the format's forward call alone ("
        + ("CUDA: `torch.cuda.synchronize()` of the whole device before and after, so a library's own stream is "
           "included; CPU: " if cuda else "") + "`time.perf_counter`); **throughput** comes from calls "
        + ("queued " if cuda else "") + "back to back. " + _interval_text(ok),
        f"- **speedup** is against {baseline['format']} {baseline['precision']} "
        + ("(strict: TF32 off) " if baseline["precision"] == "fp32" and cuda else "")
        + "on the same machine, device, image size and batch size, from throughput (dummy loader only).",
    ]
    for name in sorted(ok["loader"].unique()):
        loader = data.loader(name)
        text = f"- **`{name}` loader:** {loader.description}."
        rows = ok[(ok["loader"] == name) & ok["distinct_images_per_batch"].notna()]
        repeated = rows[rows["distinct_images_per_batch"] < rows["batch_size"]]
        if not repeated.empty:
            text += (" Batches larger than the image set repeat its images: "
                     + ", ".join(f"batch {int(b)} held {int(d)} distinct images" for b, d in
                                 repeated[["batch_size", "distinct_images_per_batch"]].drop_duplicates()
                                 .sort_values("batch_size").itertuples(index=False)) + ".")
        timed = ok[(ok["loader"] == name) & (ok["timing_kind"] == Scope.END_TO_END.value)]
        if loader.end_to_end and not timed.empty:
            text += (" Its workers run on from one configuration to the next and one endless sampler feeds them, "
                     "so they never restart or drain; the timed phase takes the batches the loader holds ready, then "
                     "whole rounds of the workers, at least `min_iters` batches: "
                     f"{span(timed['iterations'] / timed['processes'], '.0f')} batches per process in this run. "
                     "*Decode capacity* = images per second the producers made (timed inside them); the end-to-end "
                     "figure, taken over the batches the loader had to make during the timed phase (not those it "
                     "held ready at its start), is checked against min(model under load, capacity) and against the "
                     "capacity itself.")
        lines.append(text)
    methods = sorted(set(ok["memory_method"].dropna()))
    lines.append("- **memory:** " + "; ".join(methods) + ". The process baseline is taken after imports"
                 + (", the CUDA context and the library handles (nvJPEG's too where a process decodes on the GPU)"
                    if cuda else " and the library handles") + "; each configuration's figure is the model's load "
                 "plus its own peak growth over its own baseline (taken after its input batch was made, before its "
                 "loader started: a real loader's batches" + (", queues and GPU decoder" if cuda else " and queues")
                 + " are in its figure, its worker processes are not) during its timed phases: what the running "
                 "model needs, whichever configuration of the process first met its shape. The first call's peak "
                 + ("(autotuning, graph capture) " if cuda else "") + "is apart, in the CSV's "
                 "`memory_first_call_mb`. " + _memory_definition(ok))
    measured = ok[(ok["device"] == "cuda")].dropna(subset=["memory_first_call_mb", "memory_mb"])
    if not measured.empty:
        extra = (measured["memory_first_call_mb"] - measured["memory_mb"]).clip(lower=0)
        lines.append(f"  Measured here: loading took a median {measured['memory_load_mb'].median():.0f} MB; a first "
                     "call "
                     f"at a new shape peaked a median {extra.median():.0f} MB (up to {extra.max():.0f} MB) above the "
                     "steady figure.")
    timed = ok.dropna(subset=["gpu_busy_share"]) if "gpu_busy_share" in ok else ok.iloc[0:0]
    if not timed.empty:
        lines.append("- **host-bound (◊):** a CUDA row's call is also timed on the device with its launches hidden "
                     "(a spin kernel queued first keeps the GPU busy while the host queues the whole call; CUDA "
                     "events around the call then time its kernels back to back). Device time / call time is how "
                     f"much of a call the GPU is busy: here {span(timed['gpu_busy_share'], '.0%')}"
                     f"{_rate_share(timed)}. Where either is "
                     "below the set share in some process, the host's launch rate sets the row's figures; that rate "
                     "moves between processes and runs, so the row's range over its processes is its figure and its "
                     "fastest process what the format does on a quiet host. ONNX Runtime runs on the measuring "
                     "process's torch stream and is timed so too; a row whose library ran on a stream of its own "
                     "(ONNX Runtime's own CUDA graphs) has no device time (° in the tables).")
    for name in sorted(ok["backend_name"].dropna().unique()):
        note = backends.spec(name).note if name in backends.names() else None
        if note:
            lines.append(f"- **{backends.spec(name).label}:** {note}")
    energy = sorted({row.gpu.energy_method for row in ok[ROW] if row.gpu and row.gpu.energy_method})
    if ok["energy_j_per_image"].notna().any():
        lines.append(f"- **Energy and clocks (CUDA):** {'; '.join(energy)}; the SM clock, power and clock event "
                     f"reasons sampled every {gpus.CLOCK_SAMPLE_MS} ms by the job process during timing; a row timed "
                     "while a power or thermal limit held the clocks down is marked †. Columns in the CSV.")
    tf32, strict = (" and TF32", "strict ") if cuda else ("", "")
    lines.append(
        "- **Accuracy:** each row's logits on a fixed batch of real images, at the row's own batch size, against "
        "PyTorch fp32 eager on the CPU (in the row's first measuring process, after its timing), as the largest "
        "relative L2 error of an image's logit vector. Its limit follows from the arithmetic: "
        f"√L·(u_in + √K·u_acc) with L = {accuracy.DEPTH} weighted layers on the longest path, K = "
        f"{accuracy.LONGEST_DOT_PRODUCT} terms in the longest dot product, u_in the unit roundoff of the "
        f"convolution inputs (2⁻¹¹ for fp16{tf32}, 2⁻²⁴ for {strict}fp32) and u_acc = 2⁻²⁴ (fp32 accumulation), "
        f"independent rounding errors adding in quadrature: {accuracy.relative_error_limit('fp16'):.1e} for "
        f"fp16{tf32.replace(' and ', '/')}, {accuracy.relative_error_limit('fp32'):.1e} for {strict}fp32. "
        "Non-finite logits are outliers on their own.")
    return lines + [""]


def _memory_definition(ok: pd.DataFrame) -> str:
    """The row's memory figure in one sentence, with how many rows took which processes' figure."""
    chosen = ok.get("memory_chosen_from", pd.Series(dtype=object)).value_counts()
    how = {"first": "from the processes where they went first", "median": "the median over all their processes",
           "highest": "the highest of their processes (measured by schema 5, whose rule that was)"}
    counts = (" (here " + ", ".join(f"{int(chosen[key])} rows {how[key]}" for key in how if chosen.get(key))
              + "; CSV `memory_chosen_from`)" if len(chosen) else "")
    return ("A row's memory is its configuration's own: what it needs in a process that ran nothing before it, the "
            "median over its processes where it went first, else the median over all of them, which can depend on "
            f"what ran before it{counts}.")


def _rate_share(timed: pd.DataFrame) -> str:
    """The back-to-back phase's busy share of the rows that have one (schema 8 on), as a clause."""
    rate = timed["rate_busy_share"].dropna() if "rate_busy_share" in timed else timed.iloc[0:0]
    return ("" if rate.empty else "; device time × calls / wall time is how much of the back-to-back phase: here "
            f"{span(rate, '.0%')}")
