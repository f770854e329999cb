"""The plots' axes as a reader wants them: plain numbers on every axis ("20", "1,000", never "2×10¹"), at least
four labelled ticks where the data allows, a log axis only where the values span more than a factor LOG_ABOVE,
axes that span the data (a bar axis starts well below its smallest bar, a linear one at zero); values written on
bars as plain numbers."""
from __future__ import annotations

import math

import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

# Values spanning more than this factor get a log axis; fewer get a linear one (a log axis over 14-30 shows
# one decade's fraction with hardly a tick).
LOG_ABOVE = 8.0


def plain(value, _position=None) -> str:
    """A tick label as a reader writes it, saying the tick's value: 0.5, 2, 20, 10.5, 1,000, 52,000 (not rounded to
    a whole number: ticks at 10.5 and 13.5 read "10" and "14")."""
    if value == 0:
        return "0"
    decimals = next((d for d in range(7) if abs(round(value, d) - value) <= 1e-9 * abs(value)), 6)
    return f"{value:,.{decimals}f}"


def value_text(value: float) -> str:
    """A value written on a bar: three significant digits below 1,000 (27.1, 128), whole numbers above."""
    return f"{value:,.0f}" if abs(value) >= 999.5 else f"{value:#.3g}".rstrip(".")


TICK_STEPS = [(1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)]


def _log_ticks(low: float, high: float, least: int = 4) -> list[float]:
    """Round values between `low` and `high`, the sparsest set of them that gives at least `least` ticks."""
    ticks: list[float] = []
    for steps in TICK_STEPS:
        ticks = [round(step * 10 ** exponent, 10)
                 for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
                 for step in steps if low <= step * 10 ** exponent <= high]
        if len(ticks) >= least:
            break
    return ticks


def _nice_below(value: float) -> float:
    """The largest of 1, 2, 5 × 10^k at or below `value`."""
    exponent = math.floor(math.log10(value))
    return max(step * 10 ** exponent for step in (1, 2, 5) if step * 10 ** exponent <= value)


def value_axis(axes, values, which: str, bars: bool = False, zero: bool = False) -> bool:
    """Scale, limits and plain labelled ticks of the value axis (`which`: "x" or "y"); returns whether it is log.
    Lines: the axis spans the data with a margin; bars: a linear axis starts at zero, a log one at a round value
    at most a quarter of the smallest bar, so every bar has a visible length; `zero`: a linear axis from zero."""
    values = [float(v) for v in values if v is not None and not pd.isna(v) and v > 0]
    set_scale, set_limits = getattr(axes, f"set_{which}scale"), getattr(axes, f"set_{which}lim")
    axis = axes.xaxis if which == "x" else axes.yaxis
    if not values:
        return False
    low, high = min(values), max(values)
    if high / low > LOG_ABOVE:
        set_scale("log")
        bottom = _nice_below(low / 4) if bars else low / 1.3
        top = high * (2.5 if bars else 1.3)  # bars: room for the value written at their end
        set_limits(bottom, top)
        ticks = _log_ticks(bottom, top)
        axis.set_major_locator(FixedLocator(sorted({bottom, *ticks}) if bars else ticks))  # a bar axis says its start
        axis.set_minor_locator(NullLocator())
        axis.set_major_formatter(FuncFormatter(plain))
        axis.set_minor_formatter(NullFormatter())
        return True
    if bars or zero:
        set_limits(0, high * (1.3 if bars else 1.1))
    else:
        margin = (high - low) * 0.1 or high * 0.05
        set_limits(max(0.0, low - margin), high + margin)
    axis.set_major_locator(MaxNLocator(nbins=7, min_n_ticks=4))
    axis.set_major_formatter(FuncFormatter(plain))
    return False


def category_axis(axes, values, which: str = "x") -> None:
    """The batch sizes or image sizes measured, each labelled; a log2 axis where they span a factor 8 or more."""
    values = sorted({int(v) for v in values})
    axis = axes.xaxis if which == "x" else axes.yaxis
    if len(values) > 1 and values[-1] / values[0] >= 8:
        getattr(axes, f"set_{which}scale")("log", base=2)
        axis.set_minor_locator(NullLocator())
    if len(values) > 1:
        span = values[-1] - values[0]
        margin = span * 0.06 if values[-1] / values[0] < 8 else 0
        getattr(axes, f"set_{which}lim")(values[0] / (1.15 if margin == 0 else 1) - margin,
                                         values[-1] * (1.15 if margin == 0 else 1) + margin)
    axis.set_major_locator(FixedLocator(values))
    axis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.0f}"))
