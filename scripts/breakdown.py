"""Where a study's time went (a benchmark report, not a test).

    python scripts/breakdown.py WORKDIR [--log SNAKEMAKE_LOG] [--out breakdown.md]

From every result JSON under WORKDIR/artifacts/results (each measuring process records when it was forked
and when it reached each stage), the export provenances and, if given, Snakemake's log (when each job ran):
- per format, device and loader: seconds per measuring process in each stage — start (fork to the child
  running), init (threads, CUDA context, loader start), load, first run (lazy init, autotuning, compile
  caches), warm-up, timing, after (accuracy, loader shutdown), exit — and what one repeat of the format's
  configurations costs;
- per job: seconds before its first measuring process (imports, tuning) and in total;
- the exports: seconds each, and how long the GPU was held by jobs that measure nothing.
"""
import argparse
import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

from fmtbench import paths
from fmtbench.atomic import read_json

STAGES = [("start", None, "started"), ("init", "started", "baseline"), ("load", "baseline", "loaded"),
          ("first run", "loaded", "first_run"), ("warm-up", "first_run", "timing_start"),
          ("timing", "timing_start", "timing_end"), ("after", "timing_end", "closed"), ("exit", "closed", "exited")]


def process_rows(workdir: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((workdir / paths.RESULTS_DIR).rglob("*.json")):
        result = read_json(path)
        config = result["config"]
        for index, process in enumerate(result.get("processes") or []):
            stages = process["stages_s"]
            row = {**config, "status": result["status"], "process": index + 1,
                   "forked_at": stages.get("forked_at"), "total": stages.get("exited")}
            for label, begin, end in STAGES:
                if end in stages and (begin is None or begin in stages):
                    row[label] = stages[end] - (stages[begin] if begin else 0.0)
            rows.append(row)
    return pd.DataFrame(rows)


def snakemake_jobs(log: Path) -> pd.DataFrame:
    """(rule, wildcards, start, end) of every job in a Snakemake log."""
    jobs, current, moment = {}, None, None
    for line in log.read_text().splitlines():
        stamp = re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line)
        if stamp:
            moment = datetime.strptime(stamp.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        rule = re.match(r"(?:local)?rule (\w+):", line)
        if rule:
            current = {"rule": rule.group(1), "start": moment, "wildcards": ""}
            continue
        if current is not None:
            jobid = re.match(r"\s+jobid: (\d+)", line)
            wildcards = re.match(r"\s+wildcards: (.*)", line)
            if jobid:
                jobs[int(jobid.group(1))] = current
            elif wildcards:
                current["wildcards"] = wildcards.group(1)
        done = re.match(r"Finished jobid: (\d+)", line)
        if done and int(done.group(1)) in jobs:
            jobs[int(done.group(1))]["end"] = moment
    frame = pd.DataFrame(jobs.values())
    if not frame.empty:
        frame["seconds"] = (frame["end"] - frame["start"]).dt.total_seconds()
    return frame


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["# Where the study's time went", ""]
    processes = process_rows(args.workdir)
    labels = [label for label, _, _ in STAGES]
    if not processes.empty:
        per_process = processes.groupby(["device", "format", "precision", "loader"])[labels + ["total"]].mean()
        counts = processes.groupby(["device", "format", "precision", "loader"]).size().rename("processes")
        totals = processes.groupby(["device", "format", "precision", "loader"])["total"].sum().rename("sum (s)")
        table = pd.concat([counts, per_process.round(3), totals.round(1)], axis=1).reset_index()
        lines += ["## Seconds per measuring process, by stage (mean)", "",
                  "start = fork to the child running; init = threads, CUDA context, loader start; first run = "
                  "lazy initialisation, autotuning, compile caches; after = accuracy (first process of a job) "
                  "and loader shutdown; exit = the process's end.", "",
                  table.to_markdown(index=False), ""]
        repeats = processes.groupby(["device", "format", "precision"]).agg(
            processes=("total", "size"), seconds=("total", "sum"), repeats=("process", "max"))
        repeats["seconds per repeat"] = (repeats["seconds"] / repeats["repeats"]).round(1)
        lines += ["## What one repeat costs, per format", "",
                  "Seconds of measuring processes over all image sizes, batch sizes and loaders, divided by the "
                  "number of processes per configuration.", "", repeats.round(1).reset_index().to_markdown(index=False),
                  ""]
        stage_sums = processes[labels].sum()
        lines += ["## All measuring processes, seconds by stage", "",
                  stage_sums.round(1).to_frame("seconds").T.to_markdown(index=False),
                  "", f"{len(processes)} processes, {processes['total'].sum():.0f} s in all.", ""]
    exports = []
    for path in sorted((args.workdir / paths.EXPORTS).rglob(f"*{paths.PROVENANCE}")):
        provenance = read_json(path)
        details = provenance.get("details") or {}
        exports.append({"export": path.name.removesuffix(paths.PROVENANCE), "status": provenance["status"],
                        "export seconds": provenance.get("export_seconds"),
                        "cache load in a fresh process (s)": (details.get("warm_load") or {}).get("seconds")})
    if exports:
        lines += ["## Exports", "", pd.DataFrame(exports).to_markdown(index=False), ""]
    if args.log:
        jobs = snakemake_jobs(args.log)
        if not jobs.empty:
            wall = (jobs["end"].max() - jobs["start"].min()).total_seconds()
            by_rule = jobs.groupby("rule")["seconds"].agg(["count", "sum", "max"]).round(0)
            lines += ["## Jobs (Snakemake log)", "", f"Wall time {wall:.0f} s ({wall / 60:.1f} min).", "",
                      by_rule.reset_index().to_markdown(index=False), ""]
            cuda = jobs[jobs["rule"] == "benchmark_cuda"].copy()
            if not processes.empty and not cuda.empty:
                first = processes.dropna(subset=["forked_at"]).groupby(["format", "device", "precision",
                                                                        "image_size"])["forked_at"].min()
                overhead = []
                for _, job in cuda.iterrows():
                    fields = dict(item.split("=", 1) for item in job["wildcards"].split(", "))
                    key = (fields["format"], fields["device"], fields["precision"], int(fields["size"]))
                    if key in first.index:
                        started = datetime.fromtimestamp(first[key])
                        overhead.append((started - job["start"]).total_seconds())
                if overhead:
                    lines += [f"CUDA jobs: {len(overhead)}; seconds from a job's start to its first measuring "
                              f"process: median {statistics.median(overhead):.1f}, total {sum(overhead):.0f} "
                              "(imports, tuning; Snakemake's log has whole seconds).", ""]
            gpu_jobs = jobs[(jobs["rule"] == "benchmark_cuda") | ((jobs["rule"].str.startswith("export"))
                                                                  & jobs["wildcards"].str.contains("device=cuda"))]
            lines += [f"GPU held by jobs: {gpu_jobs['seconds'].sum():.0f} s of {wall:.0f} s wall "
                      "(exports that compile on the GPU hold it too).", ""]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
