"""What the host did while a study ran, second by second, and whether a CPU row's slow calls line up with any of it
(a developer's tool, for the lent GPU machine).

    python3 tools/host_timeline.py record --out timeline.jsonl [--every 0.5] [--cores 14-15]   # until killed
    python3 tools/host_timeline.py relate timeline.jsonl RESULTS_DIR [--out relate.md]

`record` writes one JSON line per interval: each CPU's busy share (/proc/stat), the kernel's pressure stall
information (/proc/pressure: cpu, memory, io; the share of the interval some task stalled), the rates of the
/proc/vmstat counters of faults, compaction, transparent huge pages and reclaim, each CPU's clock (/proc/cpuinfo) and
the five processes that used the most CPU time in it (psutil). It pins itself to `--cores` (e.g. the exports' cores,
away from the CPU rows'). `relate` reads the CPU rows' JSONs under RESULTS_DIR, places each latency sample in time
(its process's fork time, the configuration's timing start and the samples before it) and gives, for every series
of the timeline, the rank correlation between the series at the sample's time and the sample's time over its
process's fastest call: which of the host's activities the slow stretches follow, if any.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path

VMSTAT = ("pgfault", "pgmajfault", "pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "compact_stall",
          "compact_migrate_scanned", "compact_isolated", "thp_fault_alloc", "thp_collapse_alloc",
          "thp_split_page", "numa_hint_faults", "pswpin", "pswpout")


def _cores(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _stat() -> dict[str, tuple[int, int]]:
    """Per CPU: (busy ticks, all ticks)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *ticks = line.split()
            values = [int(v) for v in ticks]
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            out[name] = (sum(values[:8]) - idle, sum(values[:8]))
    return out


def _pressure() -> dict[str, int]:
    """Microseconds some task stalled, per resource (cumulative)."""
    out = {}
    for resource in ("cpu", "memory", "io"):
        try:
            line = Path(f"/proc/pressure/{resource}").read_text().splitlines()[0]
            out[resource] = int(line.rsplit("total=", 1)[1])
        except (OSError, IndexError, ValueError):
            pass
    return out


def _vmstat() -> dict[str, int]:
    values = dict(line.split() for line in Path("/proc/vmstat").read_text().splitlines())
    return {key: int(values[key]) for key in VMSTAT if key in values}


def _clocks() -> list[float]:
    return [float(line.split(":")[1]) for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")]


def _processes() -> dict[int, tuple[str, float]]:
    import psutil
    out = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is None:
            continue
        command = " ".join(proc.info["cmdline"] or [proc.info["name"] or "?"])[-90:]
        out[proc.info["pid"]] = (command, times.user + times.system)
    return out


def record(out: Path, every: float, cores: list[int] | None) -> None:
    if cores:
        os.sched_setaffinity(0, cores)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    last = (time.time(), _stat(), _pressure(), _vmstat(), _processes())
    with out.open("a", encoding="utf-8") as sink:
        while not stopping:
            time.sleep(every)
            now = (time.time(), _stat(), _pressure(), _vmstat(), _processes())
            seconds = now[0] - last[0]
            busy = {name: round((b - last[1][name][0]) / max(1, a - last[1][name][1]), 3)
                    for name, (b, a) in now[1].items() if name in last[1]}
            used = sorted(((cpu - last[4].get(pid, ("", 0.0))[1], command) for pid, (command, cpu) in now[4].items()),
                          reverse=True)[:5]  # a process new in the interval: all its CPU time
            clocks = sorted(_clocks())
            sink.write(json.dumps({
                "t": now[0], "seconds": round(seconds, 3), "busy": busy,
                "pressure": {k: round((v - last[2].get(k, v)) / 1e6 / seconds, 4) for k, v in now[2].items()},
                "vmstat_per_s": {k: round((v - last[3].get(k, v)) / seconds, 1) for k, v in now[3].items()},
                "mhz": clocks[len(clocks) // 2] if clocks else None,
                "top": [{"cpu_s": round(cpu, 2), "command": command} for cpu, command in used if cpu > 0]}) + "\n")
            sink.flush()
            last = now


def _samples(results: Path) -> list[tuple[float, float, str]]:
    """(time of the sample's middle, its time over its process's fastest call, the row) of every CPU row's sample."""
    out = []
    for path in sorted(results.rglob("*.json")):
        row = json.loads(path.read_text())
        config = row.get("config") or {}
        if config.get("device") != "cpu" or row.get("status") != "ok" or config.get("loader") != "dummy":
            continue
        name = f"{config['format']} bs {config['batch_size']}"
        for process, timing in zip(row["processes"], row["timing"]["processes"]):
            start = process["stages_s"]["forked_at"] + process["config_stages_s"]["timing_start"]
            fastest = min(timing["samples_ms"])
            for ms in timing["samples_ms"]:
                out.append((start + ms / 2e3, ms / fastest, f"{name} p{process['process']}"))
                start += ms / 1e3
    return out


def _series(line: dict) -> dict[str, float]:
    out = {f"pressure {k}": v for k, v in line["pressure"].items()}
    out.update({f"vmstat {k}": v for k, v in line["vmstat_per_s"].items()})
    busy = list(line["busy"].values())
    out["machine busy (cores)"] = sum(busy)
    if line.get("mhz"):
        out["clock MHz"] = line["mhz"]
    return out


def relate(timeline: Path, results: Path) -> str:
    import pandas as pd
    lines = [json.loads(text) for text in timeline.read_text().splitlines() if text.strip()]
    samples = _samples(results)
    if not lines or not samples:
        return "nothing to relate: no timeline lines or no CPU model-alone samples\n"
    rows = []
    for when, ratio, row in samples:
        line = min(lines, key=lambda item: abs(item["t"] - item["seconds"] / 2 - when))
        if abs(line["t"] - line["seconds"] / 2 - when) <= line["seconds"]:
            rows.append({"ratio": ratio, "row": row, **_series(line)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return "nothing to relate: the timeline does not cover the CPU rows' samples\n"
    series = [column for column in frame.columns if column not in ("ratio", "row") and frame[column].nunique() > 1]
    slow = frame["ratio"] > 1.3
    table = pd.DataFrame([{"series": column,
                           "rank correlation with the slowdown": frame["ratio"].rank().corr(frame[column].rank()),
                           "median while slow (> 1.3x)": frame.loc[slow, column].median(),
                           "median otherwise": frame.loc[~slow, column].median()} for column in series])
    table = table.sort_values("rank correlation with the slowdown", key=abs, ascending=False)
    return (f"{len(frame)} CPU samples placed in the timeline ({(frame['ratio'] > 1.3).sum()} slower than 1.3x their "
            f"process's fastest call)\n\n" + table.to_markdown(index=False, floatfmt=".3g") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--out", required=True)
    rec.add_argument("--every", type=float, default=0.5)
    rec.add_argument("--cores", help="pin the recorder, e.g. 14-15")
    rel = sub.add_parser("relate")
    rel.add_argument("timeline")
    rel.add_argument("results")
    rel.add_argument("--out")
    args = parser.parse_args()
    if args.command == "record":
        record(Path(args.out), args.every, _cores(args.cores) if args.cores else None)
        return
    text = relate(Path(args.timeline), Path(args.results))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text, end="")


if __name__ == "__main__":
    main()
