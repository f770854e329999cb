"""Would one measuring process per CUDA model-alone row reproduce as the row's processes do? (issue 35's lever: the
grid's model-alone rows take two processes each; one would save about 5 minutes of the whole grid on one H100).
A benchmark tool, not a test.

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
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fmtbench.report import frame, replicate

KEYS = ("host", "format", "precision", "image_size", "batch_size")
FIGURES = {"gpu_ms": "device time per call", "latency_ms": "wall latency", "rate_fps": "back-to-back rate"}


def model_alone_rows(folder: str | Path) -> dict[tuple, dict]:
    """CUDA model-alone rows that were measured: key -> the row's figures as the report reads them (report.frame)
    and each process's, in process order."""
    table = frame.load(sorted(Path(folder).rglob("*.json")))
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
    host_bound = sum(first[key]["host_bound"] or second[key]["host_bound"] for key in set(first) & set(second))
    shown = table.assign(**{column: table[column].map(lambda v: f"{v:.2%}")
                            for column in ("median difference", "largest")}) if not table.empty else table
    text = "\n".join([
        f"# One process per CUDA model-alone row: `{args.first}` (A) against `{args.second}` (B)", "",
        f"{len(set(first) & set(second))} CUDA model-alone rows in both runs; {host_bound} host-bound (◊) in either, "
        "left out of the wall figures. Made by tools/one_process.py (its docstring says how).", "",
        shown.to_markdown(index=False) if not shown.empty else "No CUDA model-alone row was measured in both.", ""])
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
