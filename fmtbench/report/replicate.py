"""Two result sets of one study, row against row: does each figure reproduce? (`scripts/replicate.py` writes the
table.)

Per row present and measured in both sets: the two figures, their difference, the interval the first set
states, and a verdict by the bar of the issue "Two runs, one answer":

- CUDA dummy rows the GPU sets (not host-bound): latency p50 and back-to-back throughput within max(2 %, the
  stated interval) of each other — the latency's interval is the order-statistics interval of its median, the
  throughput's the range of its processes' rates;
- host-bound rows (◊): the other run's median inside this run's range over its processes (their honest interval);
- every row's memory (steady state) within 2 % or 8 MB;
- real-loader rows' end-to-end rate within 5 %;
- CPU rows: the other run's median inside this run's interval;
- device time (ours, not the issue's): a CUDA dummy row's device time per call with its launches hidden (`gpu_ms`,
  what its kernels take, host-bound or not) within 2 %.
"""
from __future__ import annotations

import pandas as pd

from fmtbench.report import frame as frames

BARS = {"gpu_bound": 0.95, "host_bound": 0.80, "device_time": 0.95}  # share of rows that must pass
SHARE, MEMORY_MB, E2E = 0.02, 8.0, 0.05


def _within_interval(value: float, low: float, high: float, centre: float, share: float = 0.0) -> bool:
    """`value` inside [low, high] widened to at least ± `share` of `centre`."""
    return min(low, centre * (1 - share)) <= value <= max(high, centre * (1 + share))


def _check(kind: str, a: float, b: float, low: float, high: float, share: float = 0.0) -> dict:
    return {"figure": kind, "a": a, "b": b, "difference": (b - a) / a if a else None, "interval_low": low,
            "interval_high": high, "pass": bool(_within_interval(b, low, high, a, share))}


def _row_checks(row) -> list[dict]:
    checks = []
    model = row["timing_kind_a"] == "latency"
    host_bound = row.get("host_bound_a") is True or row.get("host_bound_b") is True
    if model and not pd.isna(row["latency_ms_a"]) and not pd.isna(row["latency_ms_b"]):
        if row["device"] == "cpu":
            low, high = row["latency_ci_low_ms_a"], row["latency_ci_high_ms_a"]
            if row["processes_a"] == 1:
                low, high = row["pooled_ci_low_ms_a"], row["pooled_ci_high_ms_a"]
            checks.append({**_check("latency", row["latency_ms_a"], row["latency_ms_b"], low, high), "class": "cpu"})
        elif host_bound:
            checks.append({**_check("latency", row["latency_ms_a"], row["latency_ms_b"], row["process_min_ms_a"],
                                    row["process_max_ms_a"]), "class": "host_bound"})
        else:
            checks.append({**_check("latency", row["latency_ms_a"], row["latency_ms_b"], row["latency_ci_low_ms_a"],
                                    row["latency_ci_high_ms_a"], SHARE), "class": "gpu_bound"})
            if not pd.isna(row["throughput_fps_a"]) and not pd.isna(row["throughput_fps_b"]):
                checks.append({**_check("throughput", row["throughput_fps_a"], row["throughput_fps_b"],
                                        row["throughput_min_fps_a"], row["throughput_max_fps_a"], SHARE),
                               "class": "gpu_bound"})
        if row["device"] == "cuda" and not pd.isna(row.get("gpu_ms_a")) and not pd.isna(row.get("gpu_ms_b")):
            checks.append({**_check("device_ms", row["gpu_ms_a"], row["gpu_ms_b"], row["gpu_ms_a"], row["gpu_ms_a"],
                                    SHARE), "class": "device_time"})
    if not pd.isna(row["memory_mb_a"]) and not pd.isna(row["memory_mb_b"]):
        a, b = row["memory_mb_a"], row["memory_mb_b"]
        allowed = max(SHARE * a, MEMORY_MB)
        checks.append({"figure": "memory", "class": "memory", "a": a, "b": b, "difference": (b - a) / a if a else None,
                       "interval_low": a - allowed, "interval_high": a + allowed, "pass": bool(abs(b - a) <= allowed)})
    if not pd.isna(row["e2e_fps_a"]) and not pd.isna(row["e2e_fps_b"]):
        checks.append({**_check("end_to_end", row["e2e_fps_a"], row["e2e_fps_b"], row["e2e_fps_a"],
                                row["e2e_fps_a"], E2E), "class": "end_to_end"})
    return checks


def compare(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """One line per (row, figure) measured in both sets."""
    ok = [frame[frame["status"] == "ok"].drop(columns=[frames.ROW], errors="ignore") for frame in (first, second)]
    both = ok[0].merge(ok[1], on=frames.KEYS, suffixes=("_a", "_b"))
    lines = []
    for _, row in both.iterrows():
        for check in _row_checks(row):
            lines.append({**{key: row[key] for key in frames.KEYS}, **check,
                          "host_bound": bool(row.get("host_bound_a") is True or row.get("host_bound_b") is True)})
    return pd.DataFrame(lines)


def summary(table: pd.DataFrame) -> list[str]:
    """Per class of check: how many passed, and whether the bar is met."""
    if table.empty:
        return ["No row was measured in both sets."]
    lines = []
    for name, group in table.groupby("class", sort=True):
        passed = int(group["pass"].sum())
        share = passed / len(group)
        bar = BARS.get(name, 1.0)
        lines.append(f"{name}: {passed} of {len(group)} checks pass ({share:.0%}; bar {bar:.0%}) — "
                     + ("met" if share >= bar else "NOT met"))
    return lines


def to_markdown(table: pd.DataFrame) -> str:
    shown = table.assign(
        a=table["a"].map(lambda v: f"{v:.4g}"), b=table["b"].map(lambda v: f"{v:.4g}"),
        difference=table["difference"].map(lambda v: "–" if pd.isna(v) else f"{v:+.1%}"),
        interval=table.apply(lambda r: f"{r['interval_low']:.4g}–{r['interval_high']:.4g}", axis=1),
        verdict=table["pass"].map({True: "yes", False: "NO"}))
    columns = [*frames.KEYS, "figure", "class", "a", "b", "difference", "interval", "verdict"]
    return shown[columns].to_markdown(index=False)
