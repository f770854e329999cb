"""Where a study's time went (a benchmark report, not a test).

    python tools/breakdown.py WORKDIR [--log SNAKEMAKE_LOG] [--out breakdown.md]

From every result JSON under WORKDIR/artifacts/results (each row records, per measuring process, when the
process was forked and reached its own stages, and when this configuration reached its stages), the export
provenances and, if given, Snakemake's log (when each job ran):
- per measuring process: start (fork to the child running), init (threads, CUDA context, library handles),
  load, its configurations, close and exit; per configuration, by format, device and loader: first run at its
  shape (autotuning, graph capture, loader start), warm-up + timing, after (accuracy, loader shutdown,
  release);
- per job: seconds before its first measuring process (imports, tuning) and in total, and from the job's own log
  its process's start and each step of its preparation (export check, availability, imports, environment, tuning)
  added up over its image sizes;
- the CUDA measuring processes added up by scope (model alone, end to end) with their turn waits: what one GPU
  does in series;
- the gaps between two configurations of a measuring process, by device (releasing, collecting, the next loader);
- the host's turns (fmtbench.host_turns): how long processes waited for theirs (a CPU row for the real loaders and
  exports to end; a CUDA job's real-loader process for a CPU row: its GPU idle meanwhile);
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

PROCESS_STAGES = [("start", None, "started"), ("init", "started", "baseline"), ("load", "baseline", "loaded"),
                  ("its configurations", "loaded", "closed"), ("exit", "closed", "exited")]
CONFIG_STAGES = [("first run", "config_start", "first_run"), ("warm-up + timing", "first_run", "config_end"),
                 ("after", "config_end", "done")]
STAGES = CONFIG_STAGES


def _spans(stages: dict, spans) -> dict:
    return {label: stages[end] - (stages[begin] if begin else 0.0) for label, begin, end in spans
            if end in stages and (begin is None or begin in stages)}


def _scope(before: str | None, loader: str) -> str:
    """A process's scope: model alone (the dummy loader), end to end (real loaders), or both where it took every
    loader (harness `loaders_apart` off)."""
    scope = "model alone" if loader == "dummy" else "end to end"
    return scope if before in (None, scope) else "both"


def process_rows(workdir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per configuration per measuring process, one row per measuring process)."""
    rows, processes = [], {}
    for path in sorted((workdir / paths.RESULTS_DIR).rglob("*.json")):
        result = read_json(path)
        config = result["config"]
        for process in result.get("processes") or []:
            stages, own = process["stages_s"], process.get("config_stages_s") or {}
            key = (config["format"], config["device"], config["precision"], config["image_size"],
                   stages.get("forked_at"))
            turn = process.get("turn") or {}
            before = processes.get(key, {}).get("waited for its turn") or 0.0
            waited = turn.get("waited_s")
            if waited is not None:  # a CPU row's turn is its configuration's (added up); a CUDA process's its own
                waited = before + waited if turn.get("kind") == "exclusive" else max(before, waited)
            processes[key] = {"format": config["format"], "device": config["device"],
                              "precision": config["precision"], "image_size": config["image_size"],
                              "scope": _scope(processes.get(key, {}).get("scope"), config["loader"]),
                              "forked_at": stages.get("forked_at"), "configurations": process.get("configurations"),
                              "total": stages.get("exited"), **_spans(stages, PROCESS_STAGES),
                              "turn": turn.get("kind") or processes.get(key, {}).get("turn"),
                              "waited for its turn": waited if waited is not None else (before or None)}
            rows.append({**config, "status": result["status"], "process": process.get("process"),
                         "gpu_uuid": (result.get("environment") or {}).get("gpu_uuid"),
                         "forked_at": stages.get("forked_at"), "started at": own.get("config_start"),
                         "done at": own.get("done"), **_spans(own, CONFIG_STAGES)})
    return pd.DataFrame(rows), pd.DataFrame(processes.values())


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


JOB_START = re.compile(r"job process: ([\d.]+) s from its start to its first step")
JOB_PREPARED = re.compile(r"exports checked and prepared in ([\d.]+) s")
SIZE_PREPARED = re.compile(r": prepared in (.+)$", re.MULTILINE)  # per image size: "imports 6.1 s, environment ..."
STEP = re.compile(r"([a-z][^,]*?) ([\d.]+) s")


def job_start(workdir: Path, fields: dict) -> dict:
    """What the job's own log says of its start (its last run): the seconds from the process's start to its first
    step (interpreter, Snakemake's preamble, imports), and those its exports' check and preparation took."""
    out = {}
    for log in (workdir / paths.LOGS / "benchmark").glob(f"*/{fields['format']}-{fields['device']}-"
                                                           f"{fields['precision']}.log"):
        text = log.read_text(encoding="utf-8", errors="replace")
        for name, pattern in (("process start to first step", JOB_START), ("exports checked, prepared", JOB_PREPARED)):
            found = pattern.findall(text)
            if found:
                out[name] = float(found[-1])
        out.update(preparation_steps(text))
    return out


def preparation_steps(text: str) -> dict:
    """The last run's preparation, step by step, added up over its image sizes (the job's log since 2026-12-07:
    "<size>: prepared in export checked 0.0 s, availability 0.0 s, imports 6.1 s, ...")."""
    last = text[text.rfind("job process:"):] if "job process:" in text else text
    steps: dict[str, float] = {}
    for line in SIZE_PREPARED.findall(last):
        for name, seconds in STEP.findall(line):
            steps[name] = steps.get(name, 0.0) + float(seconds)
    return steps


def _gpu_cards(configs: pd.DataFrame) -> int:
    """Distinct cards the CUDA rows ran on (several when jobs ran at once on several GPUs)."""
    if configs.empty:
        return 0
    cuda = configs[(configs["device"] == "cuda") & (configs["status"] == "ok")]
    return int(cuda["gpu_uuid"].dropna().nunique())


def serial_time(processes: pd.DataFrame) -> list[str]:
    """What one GPU must do one after the other: the CUDA measuring processes' seconds by scope (model alone, end
    to end) and what they waited for their turns on the host (the GPU idle meanwhile)."""
    cuda = processes[processes["device"] == "cuda"]
    if cuda.empty:
        return []
    waited = cuda["waited for its turn"] if "waited for its turn" in cuda else pd.Series(0.0, index=cuda.index)
    table = cuda.assign(waited=waited.fillna(0.0)).groupby("scope").agg(
        processes=("total", "size"), seconds=("total", "sum"), waited=("waited", "sum"))
    return ["## The CUDA measuring processes, one after the other on one GPU", "",
            "seconds = fork to exit, every process of the scope added; waited = for its turn on the host before it "
            "started (a CPU row's configuration then held it).", "", table.round(1).reset_index().to_markdown(
                index=False), "", f"In all {table['seconds'].sum():.0f} s measuring and {table['waited'].sum():.0f} s "
            "waiting, besides each job's start (below, from Snakemake's log).", ""]


def between_configurations(configs: pd.DataFrame) -> list[str]:
    """The gaps between two configurations of one measuring process (the previous one's end to the next one's
    start: releasing what it held, the garbage collection, opening the next loader), by device."""
    if configs.empty or "started at" not in configs:
        return []
    timed = configs.dropna(subset=["started at", "done at"]).sort_values("started at")
    keys = ["format", "device", "precision", "image_size", "forked_at"]
    gaps = []
    for (_, device, *_), process in timed.groupby(keys):
        gaps += [{"device": device, "gap": start - done}
                 for done, start in zip(process["done at"].iloc[:-1], process["started at"].iloc[1:])]
    if not gaps:
        return []
    table = pd.DataFrame(gaps).groupby("device")["gap"].agg(gaps="size", median="median", mean="mean", max="max",
                                                            seconds="sum")
    return ["## Between two configurations of a process", "",
            "seconds from a configuration's end (after its accuracy check and loader shutdown) to the next one's "
            "start in the same process: what the last one held released (its garbage collected), the next loader "
            "opened.", "", table.round(3).reset_index().to_markdown(index=False), ""]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = ["# Where the study's time went", ""]
    configs, processes = process_rows(args.workdir)
    labels = [label for label, _, _ in CONFIG_STAGES]
    if not processes.empty:
        process_labels = [label for label, _, _ in PROCESS_STAGES]
        per_format = processes.groupby(["device", "format", "precision"]).agg(
            processes=("total", "size"), configurations=("configurations", "sum"), seconds=("total", "sum"),
            **{label: (label, "mean") for label in process_labels if label in processes})
        lines += ["## Measuring processes, by format (mean seconds per process, by stage)", "",
                  "start = fork to the child running; init = threads, CUDA context, library handles; load = the "
                  "model (compiled code from caches); its configurations = every configuration it measured; exit = "
                  "the process's end.", "", per_format.round(2).reset_index().to_markdown(index=False), ""]
        lines += [f"{len(processes)} measuring processes, {processes['total'].sum():.0f} s in all; "
                  f"{int(processes['configurations'].sum())} configuration measurements.", ""]
        lines += serial_time(processes)
        turns = processes.dropna(subset=["turn"])
        if not turns.empty:
            waits = turns.groupby(["device", "turn"])["waited for its turn"].agg(
                processes="size", waited=lambda s: int((s >= 1).sum()), seconds="sum", max="max")
            lines += ["## The host's turns (fmtbench.host_turns)", "",
                      "exclusive = a CPU row's configuration (counted here per process: its configurations' waits "
                      "added), after the real loaders, exports and references then running; "
                      "shared = a CUDA job's real-loader process, after a CPU row (the GPU idle meanwhile); waited = "
                      "processes that waited 1 s or more.", "", waits.round(1).reset_index().to_markdown(index=False),
                      ""]
    if not configs.empty:
        per_config = configs.groupby(["device", "format", "precision", "loader"])[labels].mean()
        counts = configs.groupby(["device", "format", "precision", "loader"]).size().rename("measurements")
        table = pd.concat([counts, per_config.round(3)], axis=1).reset_index()
        lines += ["## Seconds per configuration in a process, by stage (mean)", "",
                  "first run = the first call at its shape (autotuning, graph capture), after its loader started; "
                  "after = accuracy (a row's first process), loader shutdown and release.", "",
                  table.to_markdown(index=False), "",
                  configs[labels].sum().round(1).to_frame("seconds").T.to_markdown(index=False), ""]
        lines += between_configurations(configs)
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
                first = processes.dropna(subset=["forked_at"]).groupby(["format", "device", "precision"]
                                                                       )["forked_at"].min()
                overhead, per_job = [], []
                for _, job in cuda.iterrows():
                    fields = dict(item.split("=", 1) for item in job["wildcards"].split(", "))
                    key = (fields["format"], fields["device"], fields["precision"])
                    if key in first.index:
                        started = datetime.fromtimestamp(first[key])
                        overhead.append((started - job["start"]).total_seconds())
                        per_job.append({"format": key[0], "precision": key[2], "start": job["start"].time(),
                                        "seconds": job["seconds"], "before its first process": overhead[-1],
                                        **job_start(args.workdir, fields)})
                if overhead:
                    lines += [f"CUDA jobs: {len(overhead)}; seconds from a job's start to its first measuring "
                              f"process: median {statistics.median(overhead):.1f}, total {sum(overhead):.0f} "
                              "(imports, tuning; Snakemake's log has whole seconds); of them, from the job's own log "
                              "where it says so: its process's start to its first step, its exports' check and "
                              "preparation (a forked tuning process for ONNX Runtime), and that preparation's steps "
                              "added up over the image sizes.", "",
                              pd.DataFrame(per_job).sort_values("start").to_markdown(index=False), ""]
            gpu_jobs = jobs[(jobs["rule"] == "benchmark_cuda") | ((jobs["rule"].str.startswith("export"))
                                                                  & jobs["wildcards"].str.contains("device=cuda"))]
            gpus = _gpu_cards(configs)
            lines += [f"GPU held by jobs: {gpu_jobs['seconds'].sum():.0f} s over {wall:.0f} s wall on {gpus or 1} "
                      "GPU(s) (exports that compile on the GPU hold it too); one GPU would need about the first "
                      "figure, whatever ran beside it.", ""]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
