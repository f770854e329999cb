"""Two result sets of one study, row against row: does what a report publishes reproduce? (`tools/replicate.py`
writes the table.) The classes and their bars are those of issue 32 ("The bar"); a share of rows passes a class
where its checks pass in at least the bar's share. Every class also says what it could not check: rows present
in one set only, rows failed in one, figures an older schema does not record.

- `device_time`: a CUDA model-alone (dummy loader) row's device time per call with its launches hidden (`gpu_ms`,
  ONNX Runtime's on its shared stream too) within 2 % of set a's; bar 95 %.
- `gpu_bound`: CUDA model-alone rows host-bound in neither set: wall latency and back-to-back rate within
  max(2 %, the interval set a states) — the latency's is the order-statistics interval of its median, the rate's
  the range of its processes' rates; bar 95 % of the checks.
- `host_bound` (◊ in either set): the wall latency and rate are the host's, reported with each set's range over
  its processes, not judged; the summary counts the rows host-bound in a, in b, in both and in only one. A row
  without the flag in a set (no device time) is reported too, under `gpu_bound`, not judged.
- `end_to_end`: real-loader rows' verdict (`e2e_bound`: loader or model) the same in both sets; bar 95 %.
  `end_to_end_model` (model-bound in both): the end-to-end rate within 5 %; `end_to_end_loader` (loader-bound in
  both): end-to-end / decode capacity within 5 %; bar 95 % each. Rows whose verdicts differ: the rate reported.
- `memory_cuda` (CUDA rows, model alone or CPU decode): the configuration's memory (`memory_mb`) within 2 % or
  8 MB; `memory_gpu_decode` (real_gpu_decode rows) within 5 %; `memory_cpu` (CPU RSS) within 5 % or 16 MB;
  bar 100 % each.
- `cpu`: CPU model-alone rows' latency, checked both ways: b's median inside a's range over its processes and a's
  inside b's, each range widened to at least ± 2 % of its median; both must hold; bar 95 %. (CPU real-loader
  rows are judged under `end_to_end` and `memory_cpu`.)
- `plain_loop` (with the anchors of `tools/ablation.py --anchors`): every row host-bound in neither set within
  1.03× of the plain loop's median: latency at most 1.03× the loop's, rate at least the loop's / 1.03; host-bound
  rows reported; bar 100 %.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fmtbench.report import frame as frames

# The bar of issue 32, declared once: tolerances, then the share of checks a class must pass.
SHARE = 0.02                  # device time; GPU-bound wall figures: max(this, the stated interval)
E2E = 0.05                    # end-to-end rate (model-bound) and rate / capacity (loader-bound)
MEMORY = {"memory_cuda": (0.02, 8.0), "memory_gpu_decode": (0.05, 0.0), "memory_cpu": (0.05, 16.0)}  # share, MB
CPU_WIDEN = 0.02              # a CPU row's range over its processes, widened to at least ± this
PLAIN_LOOP = 1.03             # a GPU-bound row against the plain loop
BARS = {"device_time": 0.95, "gpu_bound": 0.95, "end_to_end": 0.95, "end_to_end_model": 0.95,
        "end_to_end_loader": 0.95, "memory_cuda": 1.0, "memory_gpu_decode": 1.0, "memory_cpu": 1.0, "cpu": 0.95,
        "plain_loop": 1.0}
REPORTED = "host_bound"       # a class shown, not judged
CLASSES = ["device_time", "gpu_bound", REPORTED, "end_to_end", "end_to_end_model", "end_to_end_loader",
           "memory_cuda", "memory_gpu_decode", "memory_cpu", "cpu", "plain_loop"]
# A figure a set lacks, and the schema version that first records it (older files: why it is missing).
FIGURES = {"gpu_ms": ("device time", 4), "host_bound": ("host-bound flag (it needs the device time)", 4),
           "memory_mb": ("configuration memory (memory_mb)", 4),
           "e2e_bound": ("end-to-end verdict (e2e_bound: a decode capacity and a model rate under load)", 3),
           "latency_ms": ("latency", 3), "throughput_fps": ("back-to-back rate", 3), "e2e_fps": ("e2e rate", 3),
           "e2e_over_capacity": ("end-to-end / capacity", 3)}
COLUMNS = [*frames.KEYS, "class", "figure", "a", "b", "difference", "interval", "verdict", "note", "a_low", "a_high",
           "b_low", "b_high"]


@dataclass
class Comparison:
    table: pd.DataFrame                       # one line per check (COLUMNS)
    skipped: list[dict] = field(default_factory=list)   # {class, why} per row a class could not check
    flags: dict[str, int] = field(default_factory=dict)  # host-bound rows: in a, in b, both, only one, known


def _value(value):
    """None for a missing figure (None or NaN), else the value."""
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def _widened(low, high, centre: float, share: float) -> tuple[float, float]:
    """[low, high] (a stated interval or range, where there is one) widened to at least ± share of centre."""
    low, high = _value(low), _value(high)
    return (min(centre if low is None else low, centre * (1 - share)),
            max(centre if high is None else high, centre * (1 + share)))


def _range(low, high) -> str:
    low, high = _value(low), _value(high)
    if low is None or high is None:
        return "" if low is high else f"≤ {high:.4g}" if low is None else f"≥ {low:.4g}"
    return f"{low:.4g}–{high:.4g}"


def _line(cls, figure, a, b, verdict, low=None, high=None, b_low=None, b_high=None, note="") -> dict:
    numeric = isinstance(a, int | float) and isinstance(b, int | float)
    interval = _range(low, high) if b_low is None else f"a {_range(low, high)}; b {_range(b_low, b_high)}"
    return {"class": cls, "figure": figure, "a": a, "b": b, "difference": (b - a) / a if numeric and a else None,
            "interval": interval, "verdict": verdict, "note": note, "a_low": low,
            "a_high": high, "b_low": b_low, "b_high": b_high}


def _relative(row, cls, figure, share, floor=0.0) -> tuple[list[dict], list[dict]]:
    """b within `share` of a, or `floor` in the figure's unit where that is more; or why it cannot be checked."""
    a, b = row[f"{figure}_a"], row[f"{figure}_b"]
    if a is None or b is None:
        return [], _missing(row, figure, cls)
    allowed = max(share * a, floor)
    return [_line(cls, figure, a, b, "pass" if abs(b - a) <= allowed else "fail", a - allowed, a + allowed)], []


def _missing(row, column: str, cls: str) -> list[dict]:
    """Why `cls` cannot be checked on this row: `column` is missing in a set (older files: the schema that first
    records it)."""
    sides = [side for side in "ab" if _value(row[f"{column}_{side}"]) is None]
    if not sides:
        return []
    name, since = FIGURES[column]
    version = row[f"schema_version_{sides[0]}"]
    if version < since:
        because = f"schema {version} files have none"
    elif column == "gpu_ms" and row[f"backend_name_{sides[0]}"] == "onnx" and version < 5:
        because = f"schema {version} ONNX Runtime rows have none"
    elif column == "memory_mb" and _value(row[f"memory_shared_mb_{sides[0]}"]) is not None:
        because = "only a shared lower bound: no process measured it alone"
    else:
        because = f"schema {version}: not recorded for this row"
    return [{"class": cls, "why": f"no {name} in set{'s' * (len(sides) - 1)} {' and '.join(sides)} ({because})"}]


def _wall(row) -> tuple[list[dict], list[dict]]:
    """A CUDA model-alone row's wall latency and rate: judged where neither set found it host-bound."""
    flags = {side: _value(row[f"host_bound_{side}"]) for side in "ab"}
    pairs = [("latency_ms", "latency_ci_low_ms", "latency_ci_high_ms", "process_min_ms", "process_max_ms"),
             ("throughput_fps", "throughput_min_fps", "throughput_max_fps", "throughput_min_fps",
              "throughput_max_fps")]
    if any(flags.values()) or None in flags.values():
        where = [side for side in "ab" if flags[side]]
        cls = REPORTED if where else "gpu_bound"
        note = f"host-bound in {' and '.join(where)}" if where else "host-bound flag unknown: not judged"
        lines = [_line(cls, figure, row[f"{figure}_a"], row[f"{figure}_b"], "reported", row[f"{lo}_a"],
                       row[f"{hi}_a"], row[f"{lo}_b"], row[f"{hi}_b"], note)
                 for figure, _, _, lo, hi in pairs if None not in (row[f"{figure}_a"], row[f"{figure}_b"])]
        return lines, ([] if where else _missing(row, "host_bound", "gpu_bound"))
    lines, skipped = [], []
    for figure, low, high, _, _ in pairs:
        a, b = row[f"{figure}_a"], row[f"{figure}_b"]
        if a is None or b is None:
            skipped += _missing(row, figure, "gpu_bound")
            continue
        low, high = _widened(row[f"{low}_a"], row[f"{high}_a"], a, SHARE)
        lines.append(_line("gpu_bound", figure, a, b, "pass" if low <= b <= high else "fail", low, high))
    return lines, skipped


def _end_to_end(row) -> tuple[list[dict], list[dict]]:
    a, b = row["e2e_bound_a"], row["e2e_bound_b"]
    if a is None or b is None:
        return [], _missing(row, "e2e_bound", "end_to_end")
    verdict = [_line("end_to_end", "e2e_bound", a, b, "pass" if a == b else "fail")]
    if a == b:
        lines, skipped = (_relative(row, "end_to_end_model", "e2e_fps", E2E) if a == "model" else
                          _relative(row, "end_to_end_loader", "e2e_over_capacity", E2E))
        return verdict + lines, skipped
    return verdict + [_line("end_to_end", "e2e_fps", row["e2e_fps_a"], row["e2e_fps_b"], "reported",
                            note="the verdicts differ: the rate not judged")], []


def _cpu(row) -> tuple[list[dict], list[dict]]:
    a, b = row["latency_ms_a"], row["latency_ms_b"]
    if a is None or b is None:
        return [], _missing(row, "latency_ms", "cpu")
    ranges = {side: _widened(row[f"process_min_ms_{side}"], row[f"process_max_ms_{side}"], m, CPU_WIDEN)
              for side, m in (("a", a), ("b", b))}
    ok = ranges["a"][0] <= b <= ranges["a"][1] and ranges["b"][0] <= a <= ranges["b"][1]
    return [_line("cpu", "latency_ms", a, b, "pass" if ok else "fail", *ranges["a"], *ranges["b"],
                  note="both ways")], []


def memory_class(device: str, loader: str) -> str:
    return "memory_cpu" if device == "cpu" else "memory_gpu_decode" if loader == "real_gpu_decode" else "memory_cuda"


def classes(device: str, loader: str) -> list[str]:
    """The judged classes a row of this device and loader belongs to (host-bound ones fall under gpu_bound)."""
    model = ["device_time", "gpu_bound"] if device == "cuda" else ["cpu"]
    return [*(model if loader == "dummy" else ["end_to_end"]), memory_class(device, loader)]


def _row_checks(row) -> tuple[list[dict], list[dict]]:
    """The checks of a row both sets measured, and what of it could not be checked."""
    if row["loader"] != "dummy":
        parts = [_end_to_end(row)]
    elif row["device"] == "cuda":
        parts = [_relative(row, "device_time", "gpu_ms", SHARE), _wall(row)]
    else:
        parts = [_cpu(row)]
    cls = memory_class(row["device"], row["loader"])
    parts.append(_relative(row, cls, "memory_mb", *MEMORY[cls]))
    return [line for lines, _ in parts for line in lines], [entry for _, skipped in parts for entry in skipped]


def _unmatched(first: pd.DataFrame, second: pd.DataFrame) -> list[dict]:
    """Rows a set lacks or did not measure: each class they belong to could not check them."""
    merged = first.merge(second, on=frames.KEYS, how="outer", suffixes=("_a", "_b"))
    skipped = []
    for _, row in merged.iterrows():
        status = {side: row[f"status_{side}"] if isinstance(row[f"status_{side}"], str) else None for side in "ab"}
        if status["a"] == status["b"] == "ok":
            continue
        if None in status.values():
            why = f"present in set {'a' if status['a'] else 'b'} only"
        elif "ok" in status.values():
            side = "a" if status["a"] != "ok" else "b"
            why = f"failed in set {side} ({status[side]})"
        else:
            why = f"measured in neither set ({', '.join(dict.fromkeys(status.values()))})"
        keys = {key: row[key] for key in frames.KEYS}
        skipped += [{**keys, "class": cls, "why": why} for cls in classes(row["device"], row["loader"])]
    return skipped


def _prepared(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's columns (None for a missing figure) and each row's schema version, without the typed rows."""
    if frame.empty:
        return pd.DataFrame(columns=[*frames.KEYS, "status"])
    frame = frame.assign(schema_version=frame[frames.ROW].map(lambda row: row.schema_version))
    frame = frame.drop(columns=[frames.ROW]).astype(object)
    return frame.where(frame.notna(), None)


def _host_bound_counts(both: pd.DataFrame) -> dict[str, int]:
    """CUDA model-alone rows host-bound in a, in b, in both, in only one; rows with the flag in both sets, and of
    them those where it is the same."""
    rows = both[(both["device"] == "cuda") & (both["loader"] == "dummy")] if "host_bound_a" in both else None
    flags = [] if rows is None else list(zip(rows["host_bound_a"], rows["host_bound_b"], strict=True))
    return {"a": sum(a is True for a, _ in flags), "b": sum(b is True for _, b in flags),
            "both": sum(a is True and b is True for a, b in flags),
            "only one": sum((a is True) != (b is True) for a, b in flags),
            "known in both": sum(None not in pair for pair in flags),
            "same": sum(None not in (a, b) and a == b for a, b in flags)}


def compare(first: pd.DataFrame, second: pd.DataFrame, anchors: list[dict] | None = None,
            sets: tuple[str, str] = ("", "")) -> Comparison:
    """Every check of the rows both sets measured (`first` is set a); `anchors`: the records of
    `tools/ablation.py --anchors`, whose rows name their result folder (`sets`: a's and b's)."""
    first, second = _prepared(first), _prepared(second)
    skipped = _unmatched(first, second)
    ok = [frame[frame["status"] == "ok"] for frame in (first, second)]
    both = ok[0].merge(ok[1], on=frames.KEYS, suffixes=("_a", "_b"))
    lines, flags = [], _host_bound_counts(both)
    for _, row in both.iterrows():
        checks, why = _row_checks(row)
        keys = {key: row[key] for key in frames.KEYS}
        lines += [{**keys, **check} for check in checks]
        skipped += [{**keys, **entry} for entry in why]
    if anchors is not None:
        more, why = plain_loop(anchors, sets, both)
        lines, skipped = lines + more, skipped + why
    return Comparison(pd.DataFrame(lines, columns=COLUMNS), skipped, flags)


def _sides(anchors: list[dict], sets: tuple[str, str]) -> dict[str, str]:
    """Which set each result folder the anchors name is: a's or b's folder, else the sets left in the order named."""
    names = dict.fromkeys(entry["set"] for record in anchors for entry in record.get("rows") or [])
    sides = {name: side for name in names for side, folder in zip("ab", sets, strict=True)
             if folder and Path(name).resolve() == Path(folder).resolve()}
    free = [side for side in "ab" if side not in sides.values()]
    return {name: sides.get(name) or (free.pop(0) if free else name) for name in names}


def plain_loop(anchors: list[dict], sets: tuple[str, str], both: pd.DataFrame) -> tuple[list[dict], list[dict]]:
    """Each anchor row (a CUDA model-alone row of a set) against the plain loop measured after both runs: judged
    where the row is host-bound in neither set (its flags in the sets compared, else the anchor's own)."""
    lines, skipped, sides = [], [], _sides(anchors, sets)
    for record in (r for r in anchors if r.get("kind") == "anchor"):
        keys = {"device": "cuda", "loader": "dummy", "format": record.get("format"), "batch_size": record.get("batch"),
                "precision": record.get("precision"), "image_size": record.get("size")}
        match = both[(both[list(keys)] == pd.Series(keys)).all(axis=1)] if len(both) else both
        keys["host"] = match["host"].iloc[0] if len(match) else None
        if not record.get("loops"):
            skipped.append({**keys, "class": "plain_loop", "why": f"no plain loop ({record.get('error')})"})
            continue
        loop_ms, loop_fps = (statistics.median(loop[figure] for loop in record["loops"])
                             for figure in ("latency_ms", "throughput_fps"))
        for entry in record["rows"]:
            flags = [match[f"host_bound_{s}"].iloc[0] for s in "ab"] if len(match) else [entry.get("host_bound")]
            judged = all(flag is False for flag in flags)
            note = f"set {sides[entry['set']]} against the loop" + (
                "" if judged else "; host-bound" if True in flags else "; host-bound flag unknown")
            for figure, loop, low, high in (("latency_ms", loop_ms, None, PLAIN_LOOP * loop_ms),
                                            ("throughput_fps", loop_fps, loop_fps / PLAIN_LOOP, None)):
                value = entry.get(figure)
                ok = value is not None and (low or 0) <= value <= (high or value)
                lines += [{**keys, **_line("plain_loop", figure, loop, value, ("pass" if ok else "fail") if judged
                                           else "reported", low, high, note=note)}] if value is not None else []
    return lines, skipped


def verdicts(comparison: Comparison) -> dict[str, dict]:
    """Per class: checks judged, passed, the bar, whether it is met (None where nothing was judged), and what it
    could not check (`skipped`: why -> rows)."""
    table, out = comparison.table, {}
    for cls in CLASSES:
        group = table[table["class"] == cls]
        judged = group[group["verdict"].isin(["pass", "fail"])]
        passed = int((judged["verdict"] == "pass").sum())
        whys = [entry["why"] for entry in comparison.skipped if entry["class"] == cls]
        out[cls] = {"checked": len(judged), "passed": passed, "reported": int((group["verdict"] == "reported").sum()),
                    "bar": BARS.get(cls), "met": passed / len(judged) >= BARS[cls] if len(judged) else None,
                    "skipped": {why: whys.count(why) for why in dict.fromkeys(whys)}}
    return out


def summary(comparison: Comparison, anchors_given: bool = True) -> list[str]:
    """First what could not be checked, then one line per class: N of M pass (share; bar) — met / NOT met."""
    lines = [f"{cls}: could not check {rows} row(s): {why}" for cls, result in verdicts(comparison).items()
             for why, rows in result["skipped"].items()]
    if not anchors_given:
        lines.append("plain_loop: not checked: no anchors given (`--anchors`, from `tools/ablation.py --anchors`)")
    for cls, result in verdicts(comparison).items():
        passed, checked, bar = result["passed"], result["checked"], result["bar"]
        if cls == REPORTED:
            flags = comparison.flags
            lines.append(f"{cls} (reported, not judged): {flags['a']} row(s) host-bound in a, {flags['b']} in b, "
                         f"{flags['both']} in both, {flags['only one']} in only one (the flag the same in "
                         f"{flags['same']} of the {flags['known in both']} rows with one in both sets)")
        elif checked:
            how = "; each both ways (a's median in b's range and b's in a's)" if cls == "cpu" else ""
            lines.append(f"{cls}: {passed} of {checked} checks pass ({passed / checked:.0%}; bar {bar:.0%}) — "
                         + ("met" if result["met"] else "NOT met") + how
                         + (f"; {result['reported']} reported, not judged" if result["reported"] else ""))
        else:
            lines.append(f"{cls}: nothing checked (bar {bar:.0%})"
                         + (f"; {result['reported']} reported, not judged" if result["reported"] else ""))
    return lines
