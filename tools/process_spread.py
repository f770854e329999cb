"""Does a CUDA model-alone process's device time move when other work shares the host? A benchmark tool, not a test.

    python tools/process_spread.py RESULTS [RESULTS ...] [--out FILE.md]

RESULTS are result directories of one study (one run, or several runs of the same code on one machine). For each
CUDA model-alone (dummy loader) row, every measuring process's device time per call (`gpu_ms`) is set against the
row's reference: the median over the processes of every run given that ran with the host to themselves: other
processes used at most the watch's own bar (`thresholds.others_share` in its record, 10 %) of the machine's CPUs while
they timed (its `elsewhere_share`; not its `elsewhere_contended`, whose allowance for the clock's resolution grows
with the number of processes on the machine and let a process beside a CPU row, 41 % of the CPUs, pass as quiet on
an H100 host). A row
none of whose processes had the host to itself has no reference: it is left out, and counted. The processes are then
counted in two groups, by that same share: how many, their median difference from the reference, how many beyond
1 % and 2 %, the largest, and how many had device-time samples taken again behind a longer spin or hidden by none
(`gpu_retaken`, `gpu_unhidden`: recorded since the spin check; "not recorded" for rows from before it).

Why (issue 32): by the host's turns (fmtbench/host_turns.py) a model-alone process takes none, so a CPU row may
measure beside it; device time is meant not to depend on the host (a spin kernel hides the launches, and since
0f35495 each sample checks that it did).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fmtbench.report import frame

KEYS = ("host", "format", "precision", "image_size", "batch_size")
QUIET, BESIDE = "the host to itself", "other work beside it"


def processes(folders: list[str | Path]) -> pd.DataFrame:
    """One line per measuring process of a CUDA model-alone row: its row, run, process index, device time, the share
    of the machine's CPUs other processes used while it timed, and whether that share was above the watch's bar."""
    lines = []
    for run, folder in enumerate(folders, start=1):
        table = frame.load(sorted(Path(folder).rglob("*.json")))
        if table.empty:
            continue
        chosen = table[(table["status"] == "ok") & (table["device"] == "cuda") & (table["loader"] == "dummy")]
        for _, line in chosen.iterrows():
            row = line["row"]
            for timing, entry in zip(row.timing.processes, row.processes):
                watch = entry.contention or {}
                share, bar = watch.get("elsewhere_share"), (watch.get("thresholds") or {}).get("others_share")
                if timing.gpu_ms is None or share is None or bar is None:
                    continue
                lines.append({**{key: line[key] for key in KEYS}, "run": run, "process": entry.process,
                              "gpu_ms": timing.gpu_ms, "elsewhere_share": share,
                              "beside": share > bar, "retaken": timing.gpu_retaken,
                              "unhidden": timing.gpu_unhidden})
    return pd.DataFrame(lines)


def against_reference(table: pd.DataFrame) -> pd.DataFrame:
    """The processes with each one's relative difference from its row's reference (see the module's docstring)."""
    if table.empty:
        return table.assign(reference_ms=[], difference=[])
    out = []
    for _, group in table.groupby(list(KEYS), sort=True):
        quiet = group.loc[~group["beside"], "gpu_ms"]
        reference = statistics.median(quiet) if len(quiet) else None
        out.append(group.assign(reference_ms=reference, difference=(group["gpu_ms"] / reference - 1).abs()
                                if reference else None))
    return pd.concat(out, ignore_index=True)


def unreferenced(compared: pd.DataFrame) -> list[str]:
    """Rows none of whose processes had the host to itself."""
    if compared.empty:
        return []
    left_out = compared[compared["reference_ms"].isna()]
    return [" ".join(str(part) for part in key[1:]) for key, _ in left_out.groupby(list(KEYS), sort=True)]


def _counted(values: pd.Series) -> str:
    """Processes with a count above 0, of those that recorded one (rows measured before the spin check have none)."""
    recorded = values.dropna()
    return f"{int((recorded > 0).sum())} of {len(recorded)}" if len(recorded) else "not recorded"


def summary(compared: pd.DataFrame) -> pd.DataFrame:
    compared = compared[compared["reference_ms"].notna()] if not compared.empty else compared
    lines = []
    for beside, label in ((False, QUIET), (True, BESIDE)):
        group = compared[compared["beside"] == beside] if not compared.empty else compared
        if group.empty:
            lines.append({"processes": label, "count": 0})
            continue
        worst = group.loc[group["difference"].idxmax()]
        lines.append({"processes": label, "count": len(group),
                      "others' share of the CPUs": f"{group['elsewhere_share'].min():.0%}–"
                                                   f"{group['elsewhere_share'].max():.0%}",
                      "median difference": f"{np.median(group['difference']):.2%}",
                      "beyond 1%": int((group["difference"] > 0.01).sum()),
                      "beyond 2%": int((group["difference"] > 0.02).sum()),
                      "largest": f"{worst['difference']:.2%}",
                      "with samples retaken": _counted(group["retaken"]),
                      "with samples unhidden": _counted(group["unhidden"]),
                      "its row (run, process)": " ".join(str(worst[key]) for key in KEYS[1:])
                      + f" (run {worst['run']}, process {worst['process']})"})
    return pd.DataFrame(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    compared = against_reference(processes(args.results))
    left_out = unreferenced(compared)
    named = " (" + "; ".join(left_out) + ")" if left_out else ""
    runs = ", ".join(f"run {index} `{folder}`" for index, folder in enumerate(args.results, start=1))
    beyond = compared[compared["difference"] > 0.01].sort_values("difference", ascending=False) \
        if not compared.empty else compared
    shown = beyond[[*KEYS[1:], "run", "process", "gpu_ms", "reference_ms", "difference", "elsewhere_share",
                    "beside", "retaken", "unhidden"]] if not beyond.empty else beyond
    text = "\n".join([
        "# Device time of each CUDA model-alone process, by what shared the host", "",
        f"{runs}. Each process against its row's median over the processes that had the host to themselves. "
        f"Rows with no such process, left out: {len(left_out)}{named}. "
        "Made by tools/process_spread.py (its docstring says how).", "",
        summary(compared).to_markdown(index=False), "",
        "## Processes more than 1 % from their row's reference", "",
        shown.to_markdown(index=False, floatfmt=".4g") if not shown.empty else "None.", ""])
    print(text)
    if args.out:  # the table a results folder publishes, as printed
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
