"""The report's words for a row and its figures, each written in one place: a row's arithmetic
(`precision_label`), a threshold the rows were judged with (`threshold_text`), a range of figures (`span`), a
flag that is set (`is_set`), a configuration's shape, a rate, a machine's name where several ran."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from fmtbench import settings
from fmtbench.backends.base import math_label


def precision_label(row: Mapping) -> str:
    """The row's arithmetic, as every table, plot and finding names it (backends.base.math_label): `row` has the
    row's `math` (a MATH key, or none), `device` and `precision`."""
    return math_label(row.get("math"), row["device"], row["precision"])


def is_set(value) -> bool:
    """A flag that is set (a bool or numpy bool; None / NaN where a row has no such figure)."""
    return value is not None and not isinstance(value, str) and not pd.isna(value) and bool(value)


def span(values: Iterable, fmt: str = ".2g", unit: str = "") -> str:
    """`low–high` of the figures as written with `fmt` (each followed by `unit`), one figure where they read the
    same, – where there is none."""
    values = pd.Series(list(values), dtype=float).dropna()
    if values.empty:
        return "–"
    low, high = f"{values.min():{fmt}}{unit}", f"{values.max():{fmt}}{unit}"
    return low if low == high else f"{low}–{high}"


def threshold_text(typed_rows: Iterable, name: str) -> str:
    """A share the rows were judged with (settings.Settings `name`), e.g. "5%" or "5%–10%", from `typed_rows`
    (results.Row) as each recorded it; a row written before rows recorded it reads as the declared default."""
    values = {getattr(row.measurement, name, None) if row.measurement else None for row in typed_rows}
    values = {settings.default(name) if value is None else value for value in values}
    return span(values, ".0%") if values else "the set share"


def fps_text(value: float) -> str:
    """A rate in a sentence: 933, 52.0k."""
    return f"{value / 1000:.1f}k" if value >= 10000 else f"{value:.0f}"


def shape(row) -> str:
    """`32² bs 4`: a configuration's image size and batch size."""
    return f"{int(row['image_size'])}² bs {int(row['batch_size'])}"


def where(host: str, ok: pd.DataFrame) -> str:
    """` (`host`)` where the rows are of several machines, else nothing."""
    return f" (`{host}`)" if ok["host"].nunique() > 1 else ""
