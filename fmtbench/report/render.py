"""Assembles report.md from the result JSONs: warnings, setup and method, findings, tables, plots, exports,
what did not run."""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from fmtbench import accuracy, data
from fmtbench.atomic import atomic_path, read_json
from fmtbench.model import describe, is_random
from fmtbench.report import findings, items, plots
from fmtbench.report import frame as frames

# The seed study's column names where it had the column (its readers compare with it); the legend under
# each table says what each column is.
TABLE_COLUMNS = {
    "format": "function", "loader": "dataloader_type", "precision_label": "precision", "device": "device",
    "shape": "shape", "median_ms": "time (ms)", "spread_text": "spread", "memory_mb": "allocated_memory (MB)",
    "speedup": "speedup", "model_fps": "FPS", "e2e_fps": "end-to-end FPS", "rel_error": "rel. error",
}
WARNING_STYLE = "border:2px solid #c60;background:#fff3e0;padding:6px 10px;font:13px sans-serif"
TABLE_STYLE = ("table{border-collapse:collapse;font:13px sans-serif}th,td{padding:3px 8px;text-align:right;"
               "border-bottom:1px solid #ddd}th{background:#f3f3f3}")


def _precision_label(row) -> str:
    math = row["math"]
    if isinstance(math, str) and (math.startswith("fp32") or "autocast" in math):
        return math
    return row["precision"]


def _time_text(row) -> str:
    marks = ("~" if row["noisy"] else "") + ("‡" if row["unstable"] else "") + ("†" if row["throttled"] is True
                                                                                else "")
    marks += "§" if row.get("contended") == True else ""  # noqa: E712 - a numpy bool, or None in older results
    number = f"{row['median_ms']:.1f}" if row["median_ms"] >= 100 else f"{row['median_ms']:.2f}"
    return number + (f" {marks}" if marks else "")


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 100 else f"{value:.3g}"


def _spread_text(row) -> str:
    if not row["processes"] or row["processes"] < 2:
        if pd.isna(row["ci_low_ms"]):
            return "–"
        coverage = row["ci_coverage"]
        interval = f"CI {_ms(row['ci_low_ms'])}–{_ms(row['ci_high_ms'])}"
        return interval + (f" ({coverage:.0%})" if coverage < 0.95 else "")
    return f"{row['spread']:.1%} ({int(row['processes'])})"


def _e2e_text(row) -> str:
    if pd.isna(row["e2e_fps"]):
        return "–"
    marks = ("*" if row["stalled"] else "") + ("^" if row["e2e_above_model"] else "")
    return f"{row['e2e_fps']:.1f}" + (f" {marks}" if marks else "")


def _rel_error_text(row) -> str:
    if pd.isna(row["rel_error_limit"]):
        return "n/a"
    if row["non_finite_images"]:
        return f"{int(row['non_finite_images'])} non-finite"
    return f"{row['max_rel_error']:.1e}" + ("" if row["within_limit"] else " (above limit)")


def _shown(rows: pd.DataFrame) -> pd.DataFrame:
    """The table columns, formatted for reading."""
    return rows.assign(
        precision_label=rows.apply(_precision_label, axis=1),
        shape=rows.apply(lambda r: f"({int(r['batch_size'])}, 3, {int(r['image_size'])}, {int(r['image_size'])})",
                         axis=1),
        median_ms=rows.apply(_time_text, axis=1),
        spread_text=rows.apply(_spread_text, axis=1),
        memory_mb=rows["memory_mb"].map(lambda v: f"{v:.1f}"),
        speedup=rows["speedup"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}×"),
        model_fps=rows["model_fps"].map(lambda v: f"{v:.1f}"),
        e2e_fps=rows.apply(_e2e_text, axis=1),
        rel_error=rows.apply(_rel_error_text, axis=1),
    )[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)


LEGEND = (
    "*function* = format (or a variant of one); *precision* = the arithmetic (fp32 strict = TF32 off); "
    "*time* = median of the per-process median model times per batch (`~` a process was noisy, `‡` the processes "
    "disagree by more than {unstable:.0%}, `†` timed while the GPU reported power or thermal clock limits, `§` timed "
    "while other processes used its cores or its GPU); "
    "*spread* = (slowest − fastest) / median of the per-process medians (number of processes), or, with one "
    "process, the median's distribution-free interval (its coverage where below 95 %); *allocated_memory* = peak "
    "growth over the baseline of device memory in use (CUDA) or of the process's resident set (CPU); "
    "*speedup* = time of {baseline} on the same device, size, batch and loader / this time; *FPS* = batch / time; "
    "*end-to-end FPS* = images / wall time of the timed phase, waiting for data included (`*` below 90 % of "
    "min(FPS, decode capacity), `^` above FPS); *rel. error* = largest relative L2 error of an image's logits "
    "against PyTorch fp32 on the CPU.")


def _table(rows: pd.DataFrame) -> str:
    return _shown(rows).to_markdown(index=False, disable_numparse=True)


def _html_table(rows: pd.DataFrame, title: str) -> str:
    table = _shown(rows).to_html(index=False, border=0)
    warning = ""
    if rows["random_weights"].any():
        warning = (f"<p style=\"{WARNING_STYLE}\"><b>Warning — random weights</b> "
                   f"({html.escape(rows['weights'].iloc[0])}): the rel. error column measures numerical agreement "
                   "with PyTorch fp32, not ImageNet accuracy.</p>\n")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{TABLE_STYLE}</style></head>\n<body><h3>{html.escape(title)}</h3>\n{warning}{table}\n"
            "</body></html>\n")


def write_item_tables(ok: pd.DataFrame, tables_dir: Path) -> None:
    """One HTML table per machine, image size and format: the per-configuration items of the HTML report."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    for (host, size, format_name), rows in ok.groupby(["host", "image_size", "format"], sort=True):
        path = items.table_path(tables_dir, int(size), format_name, host)
        title = f"{format_name}, {int(size)}×{int(size)}, on {host}"
        with atomic_path(path) as tmp:
            tmp.write_text(_html_table(rows, title), encoding="utf-8")


def _machines(results: pd.DataFrame) -> list[str]:
    lines = []
    for host, group in results.groupby("host", sort=True):
        first = group.iloc[0]
        gpus = sorted(set(group["gpu_name"].dropna()))
        gpu_text = ", ".join(f"{name} (driver {group['driver'].dropna().iloc[0]}, CUDA "
                             f"{group['cuda_runtime'].dropna().iloc[0]}, cuDNN {int(group['cudnn'].dropna().iloc[0])})"
                             for name in gpus) or "none used"
        libraries = json.loads(first["libraries"])
        lines.append(f"- **Machine `{host}`:** CPU {first['cpu_model']}; GPU {gpu_text}; libraries "
                     + ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()) if v != "not-installed") + ".")
        cpu_rows = group[(group["device"] == "cpu") & (group["status"] == "ok")]
        if not cpu_rows.empty:
            row = cpu_rows.iloc[0]
            lines.append(f"  CPU rows ran on {int(row['cpu_cores_used'])} logical CPUs "
                         f"({int(row['cpu_physical_cores'])} physical cores) with {int(row['torch_threads'])} "
                         "intra-op threads, pinned (the cores CUDA jobs and exports used were others where the "
                         "machine had a GPU).")
    return lines


def _method(ok: pd.DataFrame, measurement: dict, baseline: dict) -> list[str]:
    lines = ["### How it was measured", ""]
    for device in ("cuda", "cpu"):
        settings = measurement.get(device)
        if settings and (ok["device"] == device).any():
            lines.append(
                f"- **{device.upper()} rows:** each configuration in {settings['repeats']} "
                f"{'process' if settings['repeats'] == 1 else 'processes'} of its own, "
                "forked from its job (which imported the libraries once and never touched the device), in rounds "
                "over the job's configurations, each round starting further into the list, so the processes of one "
                f"row are a round apart. Per process: warm-up ≥ {settings['warmup_iters']} iterations and "
                f"≥ {settings['warmup_seconds']} s, then timed ≥ {settings['min_iters']} iterations and "
                f"≥ {settings['min_seconds']} s, on until the median's 95 % interval is within "
                f"±{settings['target_ci']:.0%} of it or {settings['max_seconds']} s have passed.")
    lines += [
        "- **time:** only the format's forward call is timed (CUDA: `torch.cuda.synchronize()` of the whole device "
        "before and after, so a library's own stream is included; CPU: `time.perf_counter`). The row's time is the "
        "median of its processes' medians; every sample of every process is in the row's JSON. The interval of a "
        "median is distribution-free (order statistics, exact binomial coverage).",
        f"- **speedup** is against {baseline['format']} {baseline['precision']} "
        + ("(strict: TF32 off) " if baseline["precision"] == "fp32" else "")
        + "on the same machine, device, image size, batch size and loader.",
    ]
    for name in sorted(ok["loader"].unique()):
        loader = data.loader(name)
        text = f"- **`{name}` loader:** {loader.description}."
        if loader.end_to_end:
            text += (" One endless sampler feeds warm-up and timing, so the workers never drain; the timed phase "
                     "spans four rounds of the workers and does not wait for the model time's interval (these "
                     "rows' figure is the end-to-end rate). *Decode capacity* = batches the producer made per "
                     "second (workers × batch / mean seconds per batch, timed inside the producer); the end-to-end "
                     "figure is checked against min(model FPS, capacity).")
        lines.append(text)
    methods = sorted(set(ok["memory_method"].dropna()))
    lines.append("- **allocated_memory:** " + "; ".join(methods) + ". The baseline is taken after imports, the CUDA "
                 "context and the input batch (made in the format's dtype and layout), right before loading: the "
                 "context is excluded, everything the format allocates from loading on is included.")
    cuda = ok[(ok["device"] == "cuda")].dropna(subset=["memory_first_run_mb", "memory_load_mb"])
    if not cuda.empty:
        handles = (cuda["memory_first_run_mb"] - cuda["memory_load_mb"]).median()
        lines.append(f"  Measured here: loading took a median {cuda['memory_load_mb'].median():.0f} MB, the first "
                     f"run added {handles:.0f} MB (cuDNN/cuBLAS handles, workspaces, autotuning) — included in "
                     "the figures; per-stage values are in the CSV.")
    if ((ok["format"] == "onnx") & (ok["device"] == "cpu")).any():
        lines.append("  ONNX Runtime on the CPU allocates from its own arena (its default, kept: without it every "
                     "run pays heap allocations). The arena grows in chunks rounded up to the next power of two "
                     "(`arena_extend_strategy` kNextPowerOfTwo), so its size is a staircase over the sizes requested, "
                     "not a line: the figure can fall from one batch size to the next and overstates what the "
                     "tensors need. Measured (`scripts/ort_cpu_memory.py`, 2-core CPU, 224², a fresh process "
                     "each): with the arena 369, 486, 480, 535, 590 MB at batch 32, 40, 48, 56, 64 (twice the "
                     "same); without it 251, 282, 312, 343, 373 MB (monotone) but 3-13 % slower. The arena is what "
                     "a user of ORT's defaults pays.")
    if ok["energy_j_per_image"].notna().any():
        lines.append("- **Energy and clocks (CUDA):** NVML's board energy counter over the timed phase divided by "
                     "the images timed (idle gaps between iterations included), and the SM clock, power and clock "
                     "event reasons sampled every 10 ms by the job process during timing; a row timed while a "
                     "power or thermal limit held the clocks down is marked †. Columns in the CSV.")
    lines.append(
        "- **Accuracy:** each format's logits on a fixed batch of real images against PyTorch fp32 eager on the "
        "CPU (computed once per job, in its first measuring process, after its timing), as the largest "
        "relative L2 error of an image's logit vector. Its limit follows from the arithmetic: "
        f"L·(u_in + √K·u_acc) with L = {accuracy.DEPTH} weighted layers on the longest path, K = "
        f"{accuracy.LONGEST_DOT_PRODUCT} terms in the longest dot product, u_in the unit roundoff of the "
        "convolution inputs (2⁻¹¹ for fp16 and TF32, 2⁻²⁴ for strict fp32) and u_acc = 2⁻²⁴ (fp32 accumulation): "
        f"{accuracy.relative_error_limit('fp16'):.1e} for fp16/TF32, {accuracy.relative_error_limit('fp32'):.1e} "
        "for strict fp32. Non-finite logits are outliers on their own.")
    if (ok["format"] == "torch_trt").any():
        lines.append("- **Torch-TensorRT:** one engine per precision and image size with a dynamic batch range "
                     "(min = smallest, opt = max = largest configured batch), fp16 by `.half()` (strong typing), "
                     "built on the GPU that runs it. Static engines per batch size were not compared with it.")
    return lines + [""]


def _formats(ok: pd.DataFrame) -> list[str]:
    """What each format name in the tables is (the backends' labels, recorded in every row)."""
    labels = ok.dropna(subset=["format_label"]).drop_duplicates("format").sort_values("format")
    if labels.empty:
        return []
    return ["- **Formats:** " + "; ".join(f"`{row.format}` {row.format_label}" for row in labels.itertuples()) + "."]


def _warnings(model_provenance: dict, ok: pd.DataFrame) -> list[str]:
    if not is_random(model_provenance):
        return []
    # The reference logits are per image size (the images resized to it): say the share at each size.
    shares = ok.dropna(subset=["reference_top1_share"]).groupby("image_size")["reference_top1_share"].max()
    parts = [f"{share * 100:.3g} %" + (" of the accuracy images share one predicted class" if not index else "")
             + f" at {int(size)}²" for index, (size, share) in enumerate(shares.items())]
    concentration = (f" With these weights {', '.join(parts)}, so top-1 agreement is not reported as a finding."
                     if parts else "")
    return ["> **Warning — random weights.** This study ran on a seeded random initialisation, not on trained "
            f"ImageNet weights: {describe(model_provenance)}. Speed and memory do not depend on the weights' values; "
            "the accuracy figures then measure numerical agreement with PyTorch, not ImageNet accuracy."
            + concentration, ""]


def _not_run(results: pd.DataFrame) -> list[str]:
    missing = results[results["status"] != "ok"]
    if missing.empty:
        return ["## Not run", "", "Every configuration was measured.", ""]
    grouped = (missing.groupby(["host", "format", "device", "precision", "status", "reason"], sort=True)
               .size().reset_index(name="configurations"))
    grouped["reason"] = grouped["reason"].str.replace("|", "\\|", regex=False).str.slice(0, 300)
    return ["## Not run", "", f"{len(missing)} configurations have no measurement:", "",
            grouped.to_markdown(index=False), ""]


def _cross_hardware(ok: pd.DataFrame, figure) -> list[str]:
    if ok["host"].nunique() < 2:
        return []
    best = ok.loc[ok.groupby(["host", "format"])["model_fps"].idxmax()]
    table = best.assign(best=best.apply(
        lambda r: f"{r['model_fps']:.0f} img/s ({r['precision']} {r['device']}, {int(r['image_size'])}², "
                  f"bs {int(r['batch_size'])})", axis=1)).pivot(index="format", columns="host", values="best")
    path, link = figure(items.ALL_MACHINES, "best_per_format")
    plots.best_per_format_across_hosts(best, path)
    return ["## Across machines", "", "Best configuration (highest model throughput) of each format per machine:",
            "", table.fillna("–").to_markdown(), "", f"![best per format per machine]({link})", ""]


def _exports(provenance_paths) -> list[str]:
    rows = []
    for path in provenance_paths:
        provenance = read_json(path)
        details = provenance.get("details") or {}
        seconds = details.get("compile_seconds") or details.get("build_seconds") or provenance.get("export_seconds")
        warm = (details.get("warm_load") or {}).get("seconds")
        rows.append({"format": provenance["format"], "precision": provenance["precision"],
                     "device": provenance["device"], "image size": provenance["image_size"] or "any",
                     "status": provenance["status"],
                     "seconds": "–" if seconds is None else f"{seconds:.1f}",
                     "cache load in a fresh process (s)": "–" if warm is None else f"{warm:.1f}",
                     "how": (details.get("method") or provenance.get("reason") or "")[:160].replace("|", "\\|")})
    if not rows:
        return []
    table = pd.DataFrame(rows).sort_values(["format", "precision", "device", "image size"], key=lambda c: c.astype(str))
    return ["## Exports", "", "One artifact per format and precision (and image size / device where the format "
            "needs it); compile and build times are paid once, here (a torch.compile row's processes load the "
            "compiled model from the cache the export warmed; that load is their first run).", "",
            table.to_markdown(index=False), ""]


def render(result_paths, model_provenance_path, report_path, baseline: dict, measurement: dict,
           export_provenance=(), tables_dir=None, results_csv=None) -> None:
    """report.md with its plots; with tables_dir / results_csv also the HTML report's table items."""
    report_path = Path(report_path)
    plots_dir = report_path.parent / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)

    def figure(host: str, name: str) -> tuple[Path, str]:
        path = items.figure_path(plots_dir, host, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, path.relative_to(report_path.parent).as_posix()

    model_provenance = read_json(model_provenance_path)
    results = frames.with_speedup(frames.load(result_paths), baseline["format"], baseline["precision"])
    # Rows written before results carried their weights (another machine's, copied here) say so: this
    # machine's model need not be theirs.
    results["weights"] = results["weights"].fillna("not recorded (written before results carried it)")
    results["random_weights"] = results["random_weights"].fillna(False).astype(bool)
    ok = results[results["status"] == "ok"]
    unstable = measurement["unstable_spread"]
    legend = LEGEND.format(unstable=unstable, baseline=f"{baseline['format']} {baseline['precision']}")

    lines = ["# fmtbench: ResNet-18 inference by deployment format", ""]
    lines += _warnings(model_provenance, ok)
    lines += [f"{len(ok)} of {len(results)} configurations measured on {results['host'].nunique()} machine(s).", "",
              "## Setup", "", f"- **Weights:** {describe(model_provenance)}.", *_formats(ok), *_machines(results), ""]
    lines += _method(ok, measurement, baseline) if not ok.empty else []
    lines += ["## Findings", "", *[f"- {line}" for line in findings.all_findings(
        results, baseline["format"], unstable, is_random(model_provenance))], ""]
    lines += _cross_hardware(ok, figure)
    for host, host_ok in ok.groupby("host", sort=True):
        lines += [f"## Results on `{host}`", ""]
        for size, rows in host_ok.groupby("image_size", sort=True):
            lines += [f"### {size}×{size}", "", _table(rows), "", legend, ""]
            for name, draw in plots.PER_SIZE.items():
                path, link = figure(host, f"{name}_{size}")
                if draw(rows, size, path):
                    lines += [f"![{items.FIGURE_TITLES[name]}, {size}×{size}]({link})", ""]
        lines += ["### Across image sizes", ""]
        for name, draw in plots.PER_HOST.items():
            path, link = figure(host, name)
            if draw(host_ok, path):
                lines += [f"![{items.FIGURE_TITLES[name]}]({link})", ""]
    lines += _exports(export_provenance)
    lines += _not_run(results)
    with atomic_path(report_path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    if tables_dir is not None:
        write_item_tables(ok, Path(tables_dir))
    if results_csv is not None:
        with atomic_path(Path(results_csv)) as tmp:
            results.to_csv(tmp, index=False)
