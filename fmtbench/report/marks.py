"""The marks a row carries in the report, each for one reason: which flag sets it, which of them keep a row out
of a comparison, and which tell rows apart (a mark that every row of a table's kind carries tells nothing: the
cells leave it out and the legend says it once)."""
from __future__ import annotations

import pandas as pd

from fmtbench.report.labels import is_set, shape, span
from fmtbench.scope import Scope

# mark -> the row's flag that sets it. Model marks stand in the model-alone table (latency) and beside the model
# figure of the end-to-end table; end-to-end marks beside the end-to-end figure.
MODEL_MARKS = {"~": "noisy", "‡": "unstable", "†": "throttled", "◊": "host_bound", "§": "contended"}
E2E_MARKS = {"*": "stalled", "^": "e2e_above_model", "!": "e2e_above_capacity"}
# The kinds of table: model-alone rows (the dummy loader) and end-to-end rows (real loaders).
KINDS = {Scope.MODEL_ALONE: "model-alone", Scope.END_TO_END: "end-to-end"}
# Why a row or a pair is left out of a comparison, by its mark (the tables' legend says the same).
LEFT_OUT = {"‡": "their processes disagree", "§": "measured beside other work",
            "◊": "host-bound, without a device time to compare"}


def host_range(row) -> bool:
    """Whether a model-alone row's wall figures (latency, back-to-back rate) are this host's, shown as their range over
    its processes (two or more): a host-bound CUDA row (the host's launch rate) or a CPU row (the host's CPU speed,
    which moves between runs and within one)."""
    several = not pd.isna(row["processes"]) and row["processes"] >= 2
    return several and (is_set(row.get("host_bound")) or row.get("device") == "cpu")


def flagged(rows: pd.DataFrame, column: str) -> pd.Series:
    """Whether each row's flag `column` is set (False where the rows have no such column)."""
    if column not in rows:
        return pd.Series(False, index=rows.index)
    return rows[column].map(is_set).astype(bool)


def split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(model-alone rows, end-to-end rows), as each row's timing says it was measured."""
    real = rows["timing_kind"].eq(Scope.END_TO_END.value)
    return rows[~real], rows[real]


def on_every_row(ok: pd.DataFrame) -> dict[str, frozenset[str]]:
    """Per kind of table, the marks every one of its rows carries (where it has two rows or more: one row's mark
    still says something of it). The cells leave these out."""
    every = {}
    for kind, rows in zip(KINDS, split(ok), strict=True):
        marks = {**MODEL_MARKS, **(E2E_MARKS if kind is Scope.END_TO_END else {})}
        every[kind] = frozenset(mark for mark, column in marks.items()
                                if len(rows) > 1 and flagged(rows, column).all())
    return every


def marked(mark: str, every: dict[str, frozenset[str]]) -> str:
    """How a count of flagged rows names their mark: `marked ‡`, or where every row of a kind carries it, that
    the cells there leave it out."""
    kinds = [name for kind, name in KINDS.items() if mark in every.get(kind, ())]
    if not kinds:
        return f"marked {mark}"
    return f"marked {mark}, left out of the cells of the {' and '.join(kinds)} rows, which all carry it"


def flag(row, host_bound_ok: bool = False) -> str | None:
    """The mark that keeps a row (or a pair, with its baseline's columns) out of a comparison, or None:
    ‡ processes disagree, § contended, ◊ host-bound (unless its comparison is made on device time)."""
    def set_(*columns):
        return any(is_set(row.get(column)) for column in columns)
    if set_("unstable", "unstable_a", "unstable_b"):
        return "‡"
    if set_("contended", "baseline_contended", "contended_a", "contended_b"):
        return "§"
    if not host_bound_ok and set_("host_bound", "baseline_host_bound", "host_bound_a", "host_bound_b"):
        return "◊"
    return None


def left_out(rows: pd.DataFrame, figure: str | None = None) -> str:
    """`32² bs 4, 64² bs 8 (‡ their processes disagree); …`: the left-out rows (their `flag` column) by mark, each
    with its reason, and the range of their `figure` (a ratio) as the tables show it."""
    parts = []
    for mark, group in rows.groupby("flag", sort=True):
        text = f"{', '.join(shape(row) for _, row in group.iterrows())} ({mark} {LEFT_OUT[mark]}"
        if figure is not None and group[figure].notna().any():
            text += f"; {span(group[figure], '.2f', '×')} in the tables"
        parts.append(text + ")")
    return "; ".join(parts)
