"""Findings computed from the data (never written by hand). Like is compared with like: per machine,
device, image size and loader; fp32 is named with its math (strict or TF32); model figures come from rows that
measure the model alone (dummy loader), end-to-end figures from real-loader rows; rows whose processes disagree
(‡) or whose figure is the host's launch rate (◊) are left out of ranges and counted apart; a ranking whose rows'
ranges over their processes overlap is a tie; rows measured on different cards are said to be."""
from __future__ import annotations

import pandas as pd

from fmtbench import results, row_parts
from fmtbench.report import marks
from fmtbench.report.frame import ROW
from fmtbench.report.labels import fps_text, is_set, precision_label, shape, span, threshold_text, where
from fmtbench.scope import Scope


def _fastest_e2e(rows: pd.DataFrame) -> str:
    """The best end-to-end row, or a tie: rows within the spread of the loaders' capacities (or of the best row's
    own processes) of the best are not told apart — the loader, not the format, sets their figure."""
    per_format = rows.loc[rows.groupby(["format", "precision"])["e2e_fps"].idxmax()]
    best = per_format.loc[per_format["e2e_fps"].idxmax()]
    margin = max(rows["capacity_spread"].fillna(0).max(), best["e2e_spread"] if pd.notna(best["e2e_spread"]) else 0)
    close = per_format[per_format["e2e_fps"] >= best["e2e_fps"] * (1 - margin)]
    text = (f"{best['format']} {precision_label(best)} at batch {int(best['batch_size'])}, "
            f"{fps_text(best['e2e_fps'])} img/s")
    if len(close) > 1:
        others = ", ".join(f"{row['format']} {precision_label(row)}" for _, row in close.iterrows()
                           if row.name != best.name)
        text = (f"a tie within the loaders' capacity spread ({margin:.0%}): {text}, with {others}")
    return text


def _range_of(row) -> tuple[float, float]:
    """A model-alone row's back-to-back rate over its processes (low, high); one figure where it has one."""
    low, high = row.get("throughput_min_fps"), row.get("throughput_max_fps")
    if pd.isna(low) or pd.isna(high):
        return row["throughput_fps"], row["throughput_fps"]
    return low, high


def _rate(row) -> str:
    """A model-alone row's back-to-back rate as its table cell gives it: the range over its processes where the
    figure is this host's (a CPU row), else the median."""
    if marks.host_range(row) and not pd.isna(row.get("throughput_min_fps")):
        low, high = _range_of(row)
        return f"{fps_text(low)}–{fps_text(high)}"
    return fps_text(row["throughput_fps"])


def _cards_apart(rows) -> bool:
    cards = {card for card in (row.get("gpu_uuid") for row in rows) if isinstance(card, str) and card}
    return len(cards) > 1


def fastest_model(rows: pd.DataFrame) -> str:
    """The best model-alone row, or a tie: the runner-up (another format or precision) whose processes' range of
    back-to-back rates reaches the best's is not told apart from it. Host-bound rows (◊) are not ranked (their wall
    rate is this host's launch rate): named as left out."""
    host_bound = rows["host_bound"].eq(True) if "host_bound" in rows else pd.Series(False, index=rows.index)
    left = ", ".join(f"{row['format']} {precision_label(row)} bs {int(row['batch_size'])}"
                     for _, row in rows[host_bound].iterrows())
    left = f" (not ranked: {left} — ◊ host-bound, their wall rate is this host's)" if left else ""
    rows = rows[~host_bound]
    if rows.empty:
        return "no row to rank" + left
    per_format = rows.loc[rows.groupby(["format", "precision"])["throughput_fps"].idxmax()]
    ordered = per_format.sort_values("throughput_fps", ascending=False)
    best = ordered.iloc[0]
    text = (f"{best['format']} {precision_label(best)} at batch {int(best['batch_size'])}, {_rate(best)} img/s"
            + (" (‡: its processes disagree)" if best["unstable"] else "")
            + (" (§: measured beside other work)" if is_set(best.get("contended")) else ""))
    best_low = _range_of(best)[0]
    tied = [row for _, row in ordered.iloc[1:].iterrows() if _range_of(row)[1] >= best_low]
    if tied:
        names = ", ".join(f"{row['format']} {precision_label(row)} ({_rate(row)})" for row in tied)
        text = f"a tie (their processes' ranges overlap): {text}, with {names}"
    runner_up = tied or [row for _, row in ordered.iloc[1:2].iterrows()]
    if _cards_apart([best, *runner_up]):
        text += " (measured on different cards, not calibrated against each other)"
    return text + left


def fastest(ok: pd.DataFrame) -> list[str]:
    """Model throughput (back to back) on the dummy loader, and end-to-end throughput on each real loader."""
    lines = []
    for (host, device, loader), group in ok.groupby(["host", "device", "loader"], sort=True):
        end_to_end = bool(group["timing_kind"].eq(Scope.END_TO_END.value).all())
        metric = "e2e_fps" if end_to_end else "throughput_fps"
        group = group.dropna(subset=[metric])
        if group.empty:
            continue
        parts = []
        for size, rows in group.groupby("image_size", sort=True):
            if end_to_end:
                parts.append(f"{size}²: {_fastest_e2e(rows)}")
                continue
            parts.append(f"{size}²: {fastest_model(rows)}")
        what = "end-to-end" if end_to_end else "model, back to back"
        line = f"Fastest ({what} throughput) on {device}{where(host, ok)}, {loader} loader — " + "; ".join(parts)
        capacity = group["decode_capacity_fps"].dropna() if end_to_end else pd.Series(dtype=float)
        if not capacity.empty:
            line += (f" (the loader's decode capacity ranged {fps_text(capacity.min())}–{fps_text(capacity.max())} "
                     "img/s over these rows: where it is below the model throughput, it sets the end-to-end figure "
                     "whatever the format)")
        bound = group["e2e_bound"].dropna() if end_to_end and "e2e_bound" in group else pd.Series(dtype=object)
        if not bound.empty:
            line += (f"; {int(bound.eq('loader').sum())} of {len(bound)} of these rows loader-bound (the decode "
                     "capacity of their own processes below the model's rate under load: the host's decoding sets "
                     "them, not the format)")
        lines.append(line + ".")
    return lines


def _ratio_line(pairs: pd.DataFrame, what: str, host: str, device: str, format_name: str, ok) -> str:
    """Ratio of speeds (b over a) over like-for-like pairs, from back-to-back throughput, or from device time where
    a row of the pair is host-bound (its wall rate is the host's launch rate: the ratio would compare hosts, not
    arithmetic); pairs with a ‡ or § row, or a ◊ row without device times, are left out and named."""
    pairs = pairs.assign(flag=[marks.flag(row, host_bound_ok=pd.notna(row["gpu_ms_a"]) and pd.notna(row["gpu_ms_b"]))
                               for _, row in pairs.iterrows()])
    steady = pairs[pairs["flag"].isna()]
    left = pairs[pairs["flag"].notna()]
    cards = (" (the pairs' rows ran on different cards, not calibrated against each other)"
             if (pairs["gpu_uuid_a"].fillna("") != pairs["gpu_uuid_b"].fillna("")).any() else "")
    subject = f"{what}, {format_name} on {device}{where(host, ok)}"
    if steady.empty:
        return f"{subject}: no pair to compare; left out: {marks.left_out(left)}{cards}."
    device_time = steady["host_bound_a"].eq(True) | steady["host_bound_b"].eq(True)
    ratio = (steady["throughput_fps_b"] / steady["throughput_fps_a"]).where(
        ~device_time, steady["gpu_ms_a"] / steady["gpu_ms_b"])
    basis = "throughput back to back"
    if device_time.any():
        basis += (f", device time for the {int(device_time.sum())} with a ◊ row "
                  f"({', '.join(shape(row) for _, row in steady[device_time].iterrows())})")
    spread = (f"×{ratio.iloc[0]:.2f} in its one configuration ({shape(steady.iloc[0])}, {basis})" if len(steady) == 1
              else f"median ×{ratio.median():.2f} (range ×{ratio.min():.2f}–×{ratio.max():.2f} over {len(steady)} "
                   f"configurations, {basis})")
    return f"{subject}: {spread}" + (f"; left out: {marks.left_out(left)}" if not left.empty else "") + f"{cards}."


def _pairs(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    columns = keys + ["throughput_fps", "unstable", "host_bound", "contended", "gpu_ms", "gpu_uuid"]
    a, b = (rows.reindex(columns=columns) for rows in (a, b))
    return a.merge(b, on=keys, suffixes=("_a", "_b")).dropna(subset=["throughput_fps_a", "throughput_fps_b"])


def fp16_gain(ok: pd.DataFrame) -> list[str]:
    """fp16 against the same format's strict fp32 (TF32 off), same size and batch, the model alone."""
    keys = ["host", "device", "format", "image_size", "batch_size", "loader"]
    model = marks.split(ok)[0]
    strict = model[(model["precision"] == "fp32") & (model["math"] != "tf32")]
    pairs = _pairs(strict, model[model["precision"] == "fp16"], keys)
    return [_ratio_line(group, "fp16 over strict fp32 (TF32 off)" if device == "cuda" else "fp16 over fp32",
                        host, device, format_name, ok)
            for (host, device, format_name), group in pairs.groupby(["host", "device", "format"], sort=True)]


def tf32_gain(ok: pd.DataFrame, baseline_format: str) -> list[str]:
    """What TF32 buys over strict fp32 for the baseline format (rows whose math is TF32), the model alone."""
    keys = ["host", "device", "image_size", "batch_size", "loader"]
    model = marks.split(ok)[0]
    base = model[(model["format"] == baseline_format) & (model["precision"] == "fp32") & (model["math"] != "tf32")]
    tf32 = model[model["math"] == "tf32"]
    lines = []
    for name, rows in tf32.groupby("format", sort=True):
        pairs = _pairs(base, rows, keys)
        for (host, device), group in pairs.groupby(["host", "device"], sort=True):
            lines.append(_ratio_line(group, f"TF32 over strict fp32 ({name} vs {baseline_format})", host, device,
                                     name, ok))
    return lines


def lowest_memory(ok: pd.DataFrame) -> list[str]:
    """Per loader (a real loader holds prefetched batches, a dummy one a single batch) at the largest
    image size and batch measured."""
    lines = []
    for (host, device, loader), group in ok.dropna(subset=["memory_mb"]).groupby(["host", "device", "loader"],
                                                                                 sort=True):
        largest = group[(group["image_size"] == group["image_size"].max())]
        largest = largest[largest["batch_size"] == largest["batch_size"].max()]
        best = largest.loc[largest["memory_mb"].idxmin()]
        figure = (f"{best['memory_min_mb']:.0f}–{best['memory_max_mb']:.0f} MB (its processes disagree)"
                  if is_set(best.get("memory_disagree")) else f"{best['memory_mb']:.0f} MB")
        lines.append(f"Lowest memory growth on {device}{where(host, ok)}, {loader} loader, "
                     f"{int(best['image_size'])}² batch {int(best['batch_size'])}: {best['format']} "
                     f"{precision_label(best)}, {figure}.")
    return lines


def accuracy_outliers(ok: pd.DataFrame, random_weights: bool) -> list[str]:
    """Every row is checked at its own batch size: outliers are named per format, precision and size, and rows
    whose check could not run say why."""
    lines = []
    if "accuracy_error" in ok:
        for _, row in ok.dropna(subset=["accuracy_error"]).iterrows():
            lines.append(f"Accuracy not checked: {row['format']} {precision_label(row)} on {row['device']} at "
                         f"{row['image_size']}² batch {int(row['batch_size'])}: {row['accuracy_error'][:200]}.")
    rated = ok.dropna(subset=["rel_error_limit"])
    if rated.empty:
        return lines
    outliers = rated[~rated["within_limit"].astype(bool)]
    if outliers.empty:
        limits = span(rated["rel_error_limit"])
        limits = ("limits " if "–" in limits else "limit ") + limits
        lines.append(f"Accuracy: all {len(rated)} rows checked are within their precision's relative-error limit "
                     f"against PyTorch fp32 on the CPU (largest: {rated['max_rel_error'].max():.2g}; {limits}); no "
                     "non-finite logits.")
    keys = ["host", "device", "format", "precision", "image_size"]
    for (host, device, format_name, _, size), rows in outliers.groupby(keys, sort=True):
        worst = rows.loc[rows["max_rel_error"].fillna(float("inf")).idxmax()]
        detail = (f"{int(worst['non_finite_images'])} images with non-finite logits" if worst["non_finite_images"]
                  else f"relative error up to {worst['max_rel_error']:.3g} above the limit "
                       f"{worst['rel_error_limit']:.2g}")
        batches = ", ".join(str(int(b)) for b in sorted(rows["batch_size"].unique()))
        lines.append(f"Accuracy outlier: {format_name} {precision_label(worst)} on {device}{where(host, ok)} at "
                     f"{size}², batch {batches}: {detail}.")
    if not random_weights:
        low = rated[rated["top1_pct"] < 99.0]
        for _, row in low.iterrows():
            lines.append(f"Top-1 agreement below 99 %: {row['format']} {precision_label(row)} on {row['device']} "
                         f"at {row['image_size']}² batch {int(row['batch_size'])}: {row['top1_pct']:.1f} %.")
    return lines


def memory_not_monotone(ok: pd.DataFrame) -> list[str]:
    """Memory that falls as the batch grows (an allocator's chunk sizes, an algorithm's workspace), from the rows."""
    lines = []
    keys = ["host", "device", "format", "precision", "image_size", "loader"]
    for (host, device, format_name, _, size, loader), rows in ok.dropna(subset=["memory_mb"]).groupby(keys,
                                                                                                       sort=True):
        rows = rows.sort_values("batch_size")
        values = rows["memory_mb"].tolist()
        falls = [(int(a), int(b), x, y) for a, b, x, y in zip(rows["batch_size"], rows["batch_size"][1:],
                                                               values, values[1:]) if y < x * 0.95]
        if falls:
            shown = "; ".join(f"batch {a} {x:.0f} MB → {b} {y:.0f} MB" for a, b, x, y in falls)
            lines.append(f"Memory falls with a larger batch for {format_name} {precision_label(rows.iloc[0])} on "
                         f"{device}{where(host, ok)}, {size}², {loader} loader: {shown}.")
    return lines


def reliability(ok: pd.DataFrame) -> list[str]:
    """Rows marked for how they were measured, each judged with the thresholds it recorded."""
    every = marks.on_every_row(ok)
    flagged = {column: marks.flagged(ok, column) for column in
               ("unstable", "noisy", "throttled", "host_bound", "memory_disagree", "stalled", "e2e_above_model",
                "e2e_above_capacity")}
    counts = [
        ("unstable", f"whose per-process medians spread by more than "
                     f"{threshold_text(ok[ROW], 'unstable_spread')} ({marks.marked('‡', every)}; left out "
                     "of the ranges above: read their figures with care)"),
        ("noisy", f"with a noisy process (IQR above the set share of the median, {marks.marked('~', every)})"),
        ("throttled", f"timed while the GPU reported power or thermal clock limits ({marks.marked('†', every)})"),
        ("host_bound", f"whose figure is set by the host's launch rate ({marks.marked('◊', every)}: in some process "
                       f"the GPU was busy for less than {threshold_text(ok[ROW], 'host_bound_share')} of "
                       "a call or of its back-to-back phase; their range over the processes is the figure, and no "
                       "finding ranks them within it)"),
        ("memory_disagree", f"whose processes disagree on the memory figure by more than "
                            f"{row_parts.memory_agree_text()} (shown as their range)"),
        ("stalled", f"whose end-to-end throughput stayed below {results.PIPELINE_EFFICIENCY:.0%} of min(model under "
                    f"load, decode capacity) ({marks.marked('*', every)})"),
        ("e2e_above_model", "whose end-to-end throughput is above the model figure of the same run "
                            f"({marks.marked('^', every)})"),
        ("e2e_above_capacity", f"whose end-to-end throughput is above the loader's decode capacity by more than "
                               f"{results.CAPACITY_MARGIN:.0%} ({marks.marked('!', every)}: the loader's producers "
                               "did not make those images in the timed phase)"),
    ]
    lines = [f"{int(flagged[column].sum())} of {len(ok)} measured configurations {text}."
             for column, text in counts if flagged[column].any()]
    processes = ok["processes"].dropna().astype(int).value_counts().sort_index()
    if len(processes) > 1:
        lines.append("Processes per row: " + ", ".join(f"{count} rows in {n}" for n, count in processes.items())
                     + " (rows whose processes disagreed were measured in more).")
    contended = marks.flagged(ok, "contended")
    if contended.any():
        share = ok.loc[contended, "others_cpu_share_max"].dropna() if "others_cpu_share_max" in ok else []
        worst = f"; other processes took up to {max(share):.0%} of their cores" if len(share) else ""
        lines.append(f"{int(contended.sum())} of {len(ok)} configurations measured while other processes used the "
                     f"machine ({marks.marked('§', every)}{worst}; the busiest are named in each result's "
                     "`contention`): their times include that load — rerun them on a quiet machine before comparing "
                     "them.")
    return lines


def all_findings(frame: pd.DataFrame, baseline_format: str = "torch", random_weights: bool = False) -> list[str]:
    """Every finding of the rows."""
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return ["No configuration was measured."]
    return (fastest(ok) + fp16_gain(ok) + tf32_gain(ok, baseline_format) + lowest_memory(ok)
            + memory_not_monotone(ok) + accuracy_outliers(ok, random_weights) + reliability(ok))
