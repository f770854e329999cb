"""The tables of an ablation (tools/ablation.py): its records (DIR/ablation.jsonl) as Markdown, each harness variant
against the plain loop measured beside it, and the anchors (the plain loop beside a study's rows)."""
import json
import statistics
from pathlib import Path

from fmtbench import stats
from fmtbench.report.replicate import PLAIN_LOOP


def _set_name(folder: str) -> str:
    """A result folder as the tables name it: its workspace's name for a study's `artifacts/results`."""
    path = Path(folder)
    return path.parent.parent.name if path.parts[-2:] == ("artifacts", "results") else path.name


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(out: Path, host_bound_share: float) -> str:
    """The tables of DIR/ablation.jsonl: each variant against the plain loop, row by row; the anchors."""
    records = [json.loads(line) for line in (out / "ablation.jsonl").read_text().splitlines()]
    lines = ["| row | variant | segments | latency ms (median, range) | harness / loop latency | throughput img/s | "
             "harness / loop throughput | GPU busy | memory MB | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in dict.fromkeys(r["row"] for r in records if r.get("kind") in ("loop", "harness")):
        loops = [r for r in records if r["row"] == key and r["kind"] == "loop" and "latency_ms" in r]
        if not loops:
            continue
        loop_ms = [r["latency_ms"] for r in loops]
        loop_fps = _median(r["throughput_fps"] for r in loops)
        low, high, mid = min(loop_ms), max(loop_ms), statistics.median(loop_ms)
        lines.append(f"| {key} | plain loop | {len(loops)} | {mid:.3f} ({low:.3f}–{high:.3f}) | 1 | {loop_fps:.0f} | 1 "
                     "| | | |")
        for variant in dict.fromkeys(r["variant"] for r in records if r["row"] == key and r["kind"] == "harness"):
            runs = [r for r in records if r["row"] == key and r.get("variant") == variant and "latency_ms" in r]
            errors = [r for r in records if r["row"] == key and r.get("variant") == variant and "error" in r]
            if not runs:
                lines.append(f"| {key} | {variant} | 0 | {errors[0]['error'][:120] if errors else '–'} | | | | | | |")
                continue
            ms = [r["latency_ms"] for r in runs]
            fps = _median(r["throughput_fps"] for r in runs)
            busy = _median(r["gpu_busy_share"] for r in runs)
            memory = [r["memory_steady_mb"] for r in runs if r.get("memory_steady_mb") is not None]
            host_bound = bool(stats.host_bound(busy, host_bound_share))
            median = statistics.median(ms)
            if host_bound:
                verdict = "host-bound: " + ("inside" if low <= median <= high else "OUTSIDE") + " the loop's range"
            else:
                within = median <= PLAIN_LOOP * mid and (fps or 0) >= loop_fps / PLAIN_LOOP
                verdict = "GPU-bound: " + ("within" if within else "NOT within") + f" {PLAIN_LOOP:g}× of the loop"
            lines.append(f"| {key} | {variant} | {len(runs)} | {median:.3f} ({min(ms):.3f}–{max(ms):.3f}) | "
                         f"{median / mid:.3f} | {fps or 0:.0f} | {(fps or 0) / loop_fps:.3f} | "
                         f"{'–' if busy is None else f'{busy:.0%}'} | "
                         f"{'–' if not memory else f'{min(memory):.0f}–{max(memory):.0f}'} | {verdict} |")
    anchor_lines = ["", "| row | loop latency ms (segments) | loop img/s | row (set): latency ms, img/s | "
                    "harness / loop latency | harness / loop throughput | verdict |", "|---|---|---|---|---|---|---|"]
    for record in records:
        if record.get("kind") != "anchor" or "loops" not in record:
            continue
        loop_ms = [r["latency_ms"] for r in record["loops"]]
        low, high, mid = min(loop_ms), max(loop_ms), statistics.median(loop_ms)
        fps = statistics.median(r["throughput_fps"] for r in record["loops"])
        for row in record["rows"]:
            if row["host_bound"]:
                verdict = "host-bound: " + ("inside" if low <= row["latency_ms"] <= high else "outside") + \
                          " the loop's range"
            else:
                within = row["latency_ms"] <= PLAIN_LOOP * mid and (row["throughput_fps"] or 0) >= fps / PLAIN_LOOP
                verdict = "GPU-bound: " + ("within" if within else "NOT within") + f" {PLAIN_LOOP:g}×"
            anchor_lines.append(
                f"| {record['row'][7:]} | {mid:.3f} ({low:.3f}–{high:.3f}) | {fps:.0f} | {_set_name(row['set'])}: "
                f"{row['latency_ms']:.3f}, {row['throughput_fps'] or 0:.0f} | {row['latency_ms'] / mid:.3f} | "
                f"{(row['throughput_fps'] or 0) / fps:.3f} | {verdict} |")
    return "\n".join(lines + (anchor_lines if len(anchor_lines) > 3 else [])) + "\n"
