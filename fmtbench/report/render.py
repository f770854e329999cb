"""Assembles report.md from the result JSONs: setup, findings, per-size tables, plots, not-run list."""
from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from fmtbench.atomic import atomic_path, read_json
from fmtbench.model import describe
from fmtbench.report import findings, frame as frames, items, plots

TABLE_COLUMNS = {
    "format": "function", "loader": "dataloader_type", "precision_label": "precision", "device": "device",
    "shape": "shape", "median_ms": "time (ms)", "memory_mb": "allocated_memory (MB)", "speedup": "speedup",
    "model_fps": "FPS", "e2e_fps": "end-to-end FPS", "top1_pct": "top-1 agree (%)",
    "max_abs_diff": "max |Δlogit|",
}
TABLE_STYLE = ("table{border-collapse:collapse;font:13px sans-serif}th,td{padding:3px 8px;text-align:right;"
               "border-bottom:1px solid #ddd}th{background:#f3f3f3}")


def _precision_label(row) -> str:
    return row["math"] if isinstance(row["math"], str) and row["math"].startswith("fp32") else row["precision"]


def _shown(rows: pd.DataFrame) -> pd.DataFrame:
    """The table columns, formatted for reading."""
    return rows.assign(
        precision_label=rows.apply(_precision_label, axis=1),
        shape=rows.apply(lambda r: f"({int(r['batch_size'])}, 3, {int(r['image_size'])}, {int(r['image_size'])})",
                         axis=1),
        median_ms=rows["median_ms"].map(lambda v: f"{v:.2f}") + rows["noisy"].map(lambda n: " ~" if n else ""),
        memory_mb=rows["memory_mb"].map(lambda v: f"{v:.1f}"),
        speedup=rows["speedup"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2f}×"),
        model_fps=rows["model_fps"].map(lambda v: f"{v:.1f}"),
        e2e_fps=rows["e2e_fps"].map(lambda v: "–" if pd.isna(v) else f"{v:.1f}"),
        top1_pct=rows["top1_pct"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.1f}"),
        max_abs_diff=rows["max_abs_diff"].map(lambda v: "n/a" if pd.isna(v) else f"{v:.2g}"),
    )[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)


def _table(rows: pd.DataFrame) -> str:
    return _shown(rows).to_markdown(index=False, disable_numparse=True)


def _html_table(rows: pd.DataFrame, title: str) -> str:
    table = _shown(rows).to_html(index=False, border=0)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{TABLE_STYLE}</style></head>\n<body><h3>{html.escape(title)}</h3>\n{table}\n</body></html>\n")


def write_item_tables(ok: pd.DataFrame, tables_dir: Path) -> None:
    """One HTML table per machine, image size and format: the per-configuration items of the HTML report."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    for (host, size, format_name), rows in ok.groupby(["host", "image_size", "format"], sort=True):
        path = items.table_path(tables_dir, int(size), format_name, host)
        title = f"{format_name}, {int(size)}×{int(size)}, on {host}"
        with atomic_path(path) as tmp:
            tmp.write_text(_html_table(rows, title), encoding="utf-8")


def _setup(results: pd.DataFrame, model_provenance: dict, measurement: dict, baseline: dict) -> list[str]:
    lines = ["## Setup", "", f"- **Weights:** {describe(model_provenance)}."]
    for host, group in results.groupby("host", sort=True):
        first = group.iloc[0]
        gpus = sorted(set(group["gpu_name"].dropna()))
        gpu_text = ", ".join(f"{name} (driver {group['driver'].dropna().iloc[0]}, CUDA {group['cuda_runtime'].dropna().iloc[0]}, "
                             f"cuDNN {int(group['cudnn'].dropna().iloc[0])})" for name in gpus) or "none used"
        libraries = json.loads(first["libraries"])
        lines.append(f"- **Machine `{host}`:** CPU {first['cpu_model']}; GPU {gpu_text}; libraries "
                     + ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()) if v != "not-installed") + ".")
    lines += [
        f"- **Baseline of the speedup column:** {baseline['format']} {baseline['precision']} on the same machine, "
        "device, image size, batch size and loader (speedup = baseline time / row time).",
        "", "### How it was measured", "",
        "- Each configuration runs in a fresh process forked from its job (no memory, cache or warm state "
        "carries over from another configuration); the libraries are imported once per job.",
        "- **time** is the median model time per batch: only the format's forward call is timed, after "
        "synchronising the device (CUDA rows: `torch.cuda.synchronize` before reading the clock). "
        "`~` marks a noisy row (IQR above "
        f"{measurement.get('noisy_iqr_ratio', 0.1):.0%} of the median). FPS = batch size / median time.",
    ]
    for device in ("cpu", "cuda"):
        settings = measurement.get(device)
        if settings:
            lines.append(f"- **{device} settings:** warm-up ≥ {settings['warmup_iters']} iterations and "
                         f"≥ {settings['warmup_seconds']} s; timed until ≥ {settings['min_iters']} iterations and "
                         f"≥ {settings['min_seconds']} s, stopping at {settings['max_seconds']} s.")
    lines += [
        "- **Real loader:** a torch DataLoader decodes, resizes (short side to size·256/224) and centre-crops the "
        "image files in worker processes; batches are normalised on the target device. The model time is "
        "measured on these batches; **end-to-end FPS** divides the images of the timed phase by its wall time, "
        "waiting for data included. **Dummy loader:** one seeded random batch prepared once on the device.",
        "- **allocated_memory:** " + "; ".join(sorted(set(results["memory_method"].dropna())))
        + ". Baseline taken after imports and device initialisation, before the model is loaded; the figure "
        "covers load, warm-up and timing (weights, workspaces, activations, input batches).",
        "- **Accuracy:** each format's logits on a fixed batch of real images against PyTorch fp32 eager on "
        "the CPU: top-1 agreement and max absolute logit difference.",
    ]
    if (results["format"] == "torch_trt").any():
        lines.append("- **Torch-TensorRT:** one engine per precision and image size with a dynamic batch range "
                     "(min = smallest, opt = max = largest configured batch), fp16 by `.half()` (strong typing), "
                     "built on the GPU that runs it. Static engines per batch size were not compared with it.")
    return lines + [""]


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
        rows.append({"format": provenance["format"], "precision": provenance["precision"],
                     "device": provenance["device"], "image size": provenance["image_size"] or "any",
                     "status": provenance["status"],
                     "seconds": "–" if seconds is None else f"{seconds:.1f}",
                     "how": (details.get("method") or provenance.get("reason") or "")[:160].replace("|", "\\|")})
    if not rows:
        return []
    table = pd.DataFrame(rows).sort_values(["format", "precision", "device", "image size"], key=lambda c: c.astype(str))
    return ["## Exports", "", "One artifact per format and precision (and image size / device where the format "
            "needs it); compile and build times are paid once, here, not in the benchmarks.", "",
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
    ok = results[results["status"] == "ok"]

    lines = ["# fmtbench: ResNet-18 inference by deployment format", "",
             f"weights: {describe(model_provenance)}", "",
             f"{len(ok)} of {len(results)} configurations measured on {results['host'].nunique()} machine(s).", ""]
    lines += _setup(results, model_provenance, measurement, baseline)
    lines += ["## Findings", "", *[f"- {line}" for line in findings.all_findings(results)], ""]
    lines += _cross_hardware(ok, figure)
    for host, host_ok in ok.groupby("host", sort=True):
        lines += [f"## Results on `{host}`", ""]
        for size, rows in host_ok.groupby("image_size", sort=True):
            path, link = figure(host, f"throughput_{size}")
            plots.throughput_vs_batch(rows, size, path)
            lines += [f"### {size}×{size}", "", _table(rows), "", f"![throughput {size}]({link})", ""]
        path, link = figure(host, "memory")
        plots.memory_per_format(host_ok, path)
        lines += ["### Memory", "", f"![memory]({link})", ""]
    lines += _exports(export_provenance)
    lines += _not_run(results)
    with atomic_path(report_path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    if tables_dir is not None:
        write_item_tables(ok, Path(tables_dir))
    if results_csv is not None:
        with atomic_path(Path(results_csv)) as tmp:
            results.to_csv(tmp, index=False)
