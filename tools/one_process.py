"""Would one measuring process per CUDA row reproduce as the row's processes do? (issue 35's levers: the grid's
model-alone rows take two processes each, its real-loader rows two (`end_to_end_processes`); one would save minutes of
the whole grid on one H100). A benchmark tool, not a test.

    python tools/one_process.py RESULTS_A RESULTS_B [--out FILE.md]

RESULTS_* are two runs of one study (result directories). For the CUDA model-alone (dummy loader) rows of both, it
compares, with the replicate check's share (fmtbench/report/replicate.py: SHARE):
- **one process a row**: the first process of a row in run A against the first process of the same row in run B
  (the process a one-process study would have run: it measures the configurations in the first process's order);
- **the row**: the row's own figures, from every process (what the study reports today);
- **within a run**: the row's first process against its second in run A (what the second process adds).
Figures: device time per call (`gpu_ms`; every row), wall latency (the median of the synchronised calls) and
back-to-back rate (images / s), these two only for rows host-bound (◊) in neither run, as the replicate judges them.
The share is the replicate's floor alone: the bar also allows a row's stated interval, so "within" here is strict.

For the CUDA real-loader rows (CPU and GPU decode) the same three comparisons, judged as the replicate judges
end-to-end (E2E share): the verdict (results.pipeline_bound: the decode capacity against the model's rate under
load, each from the compared processes), then for rows with the same verdict on both sides the end-to-end rate
(model-bound) or end-to-end / capacity (loader-bound). One process's figures are its own: the model's rate under load
is the batch over its median model time, the capacity and end-to-end rate its loader's.
"""
from __future__ import annotations

import argparse
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from fmtbench import results
from fmtbench.report import frame, replicate

KEYS = ("host", "format", "precision", "image_size", "batch_size")
FIGURES = {"gpu_ms": "device time per call", "latency_ms": "wall latency", "rate_fps": "back-to-back rate"}


@cache
def _load(folder: str) -> pd.DataFrame:
    """A run's rows as the report reads them, read once for both kinds of row."""
    return frame.load(sorted(Path(folder).rglob("*.json")))


def model_alone_rows(folder: str | Path) -> dict[tuple, dict]:
    """CUDA model-alone rows that were measured: key -> the row's figures as the report reads them (report.frame)
    and each process's, in process order."""
    table = _load(str(folder))
    if table.empty:
        return {}
    chosen = table[(table["status"] == "ok") & (table["device"] == "cuda") & (table["loader"] == "dummy")]
    rows = {}
    for _, line in chosen.iterrows():
        processes = [{"gpu_ms": entry.gpu_ms, "latency_ms": entry.summary.median,
                      "rate_fps": entry.throughput.images_per_s if entry.throughput is not None else None}
                     for entry in line["row"].timing.processes]
        rows[tuple(line[key] for key in KEYS)] = {
            "host_bound": bool(line["host_bound"]), "processes": processes,
            "row": {"gpu_ms": line["gpu_ms"], "latency_ms": line["latency_ms"], "rate_fps": line["throughput_fps"]}}
    return rows


def end_to_end_rows(folder: str | Path) -> dict[tuple, dict]:
    """CUDA real-loader rows that were measured: key (the loader last) -> the row's end-to-end figures as the report
    reads them and each process's, in process order."""
    table = _load(str(folder))
    if table.empty:
        return {}
    chosen = table[(table["status"] == "ok") & (table["device"] == "cuda") & (table["loader"] != "dummy")]
    rows = {}
    for _, line in chosen.iterrows():
        row, batch = line["row"], line["batch_size"]
        processes = [{"model_fps": batch / (timing.summary.median / 1e3) if timing.summary.median else None,
                      "e2e_fps": entry.loader.end_to_end_fps if entry.loader else None,
                      "capacity_fps": entry.loader.decode_capacity_fps if entry.loader else None}
                     for timing, entry in zip(row.timing.processes, row.processes)]
        figures = {"model_fps": line["model_fps_under_load"], "e2e_fps": line["e2e_fps"],
                   "capacity_fps": line["decode_capacity_fps"]}
        rows[(*[line[key] for key in KEYS], line["loader"])] = {"processes": processes, "row": figures}
    return rows


def _judged(a: dict, b: dict) -> tuple[bool | None, str | None, float | None]:
    """(verdicts the same, the verdict, the judged figure's difference) of two sets of end-to-end figures."""
    bound_a = results.pipeline_bound(a["model_fps"], a["capacity_fps"])
    bound_b = results.pipeline_bound(b["model_fps"], b["capacity_fps"])
    if bound_a is None or bound_b is None:
        return None, None, None
    if bound_a != bound_b:
        return False, None, None
    if bound_a == "model":
        return True, "model", _difference(a["e2e_fps"], b["e2e_fps"])
    ratio = [item["e2e_fps"] / item["capacity_fps"] if item["e2e_fps"] and item["capacity_fps"] else None
             for item in (a, b)]
    return True, "loader", _difference(*ratio)


def end_to_end_comparisons(first: dict, second: dict, share: float = replicate.E2E) -> pd.DataFrame:
    """One line per comparison of the real-loader rows: verdicts the same, and per verdict the rows within
    `share`, the largest difference and its row."""
    both = sorted(set(first) & set(second))
    pairs = {
        "one process a row (A's first against B's first)":
            {key: (first[key]["processes"][0], second[key]["processes"][0]) for key in both},
        "the row (every process), A against B": {key: (first[key]["row"], second[key]["row"]) for key in both},
        "within run A (its first process against its second)":
            {key: (first[key]["processes"][0], first[key]["processes"][1])
             for key in both if len(first[key]["processes"]) > 1},
    }
    lines = []
    for comparison, values in pairs.items():
        judged = {key: _judged(*pair) for key, pair in values.items()}
        judged = {key: value for key, value in judged.items() if value[0] is not None}
        line = {"comparison": comparison, "rows": len(judged),
                "verdict the same": sum(value[0] for value in judged.values())}
        for bound, figure in (("model", "e2e rate"), ("loader", "e2e / capacity")):
            differences = {key: value[2] for key, value in judged.items() if value[1] == bound and value[2] is not None}
            worst = max(differences, key=differences.get) if differences else None
            line[f"{bound}-bound: {figure} within {share:.0%}"] = (
                f"{sum(value <= share for value in differences.values())} of {len(differences)}")
            line[f"{bound}-bound: largest"] = (f"{differences[worst]:.2%} ({' '.join(str(p) for p in worst[1:])})"
                                               if worst else "")
        lines.append(line)
    return pd.DataFrame(lines)


def _difference(a, b) -> float | None:
    return abs(b / a - 1) if a and b else None


def comparisons(first: dict, second: dict, share: float = replicate.SHARE) -> pd.DataFrame:
    """One line per (figure, comparison): rows compared, how many within `share`, the median and largest
    difference, and the row with the largest."""
    lines = []
    both = sorted(set(first) & set(second))
    for figure, label in FIGURES.items():
        wall = figure != "gpu_ms"
        kept = [key for key in both if not (wall and (first[key]["host_bound"] or second[key]["host_bound"]))]
        pairs = {
            "one process a row (A's first against B's first)":
                {key: (first[key]["processes"][0][figure], second[key]["processes"][0][figure]) for key in kept},
            "the row (every process), A against B":
                {key: (first[key]["row"][figure], second[key]["row"][figure]) for key in kept},
            "within run A (its first process against its second)":
                {key: (first[key]["processes"][0][figure], first[key]["processes"][1][figure])
                 for key in kept if len(first[key]["processes"]) > 1},
        }
        for comparison, values in pairs.items():
            differences = {key: _difference(*pair) for key, pair in values.items()}
            differences = {key: value for key, value in differences.items() if value is not None}
            if not differences:
                continue
            worst = max(differences, key=differences.get)
            lines.append({"figure": label, "comparison": comparison, "rows": len(differences),
                          f"within {share:.0%}": sum(value <= share for value in differences.values()),
                          "median difference": float(np.median(list(differences.values()))),
                          "largest": differences[worst],
                          "its row": " ".join(str(part) for part in worst[1:])})
    return pd.DataFrame(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    first, second = model_alone_rows(args.first), model_alone_rows(args.second)
    table = comparisons(first, second)
    loaded_first, loaded_second = end_to_end_rows(args.first), end_to_end_rows(args.second)
    loaded = end_to_end_comparisons(loaded_first, loaded_second)
    host_bound = sum(first[key]["host_bound"] or second[key]["host_bound"] for key in set(first) & set(second))
    shown = table.assign(**{column: table[column].map(lambda v: f"{v:.2%}")
                            for column in ("median difference", "largest")}) if not table.empty else table
    text = "\n".join([
        f"# One process per CUDA row: `{args.first}` (A) against `{args.second}` (B)", "",
        f"{len(set(first) & set(second))} CUDA model-alone rows in both runs; {host_bound} host-bound (◊) in either, "
        "left out of the wall figures. Made by tools/one_process.py (its docstring says how).", "",
        shown.to_markdown(index=False) if not shown.empty else "No CUDA model-alone row was measured in both.", "",
        "## Real-loader rows", "",
        f"{len(set(loaded_first) & set(loaded_second))} CUDA real-loader rows (CPU and GPU decode) in both runs, "
        "judged as the replicate judges end-to-end: the verdict, then the figure of the rows whose verdicts agree.", "",
        loaded.to_markdown(index=False) if not loaded.empty else "No CUDA real-loader row was measured in both.", ""])
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
