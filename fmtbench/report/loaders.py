"""The report's end-to-end pieces: a real-loader row's verdict against the decode capacity of its own processes,
a GPU-decode row's memory share of its loader, and the decode capacity per loader, image size and batch size as a
table of its own (the host's figure, not the format's)."""
from __future__ import annotations

import pandas as pd

from fmtbench.report.frame import GPU_DECODE_LOADERS
from fmtbench.report.labels import span
from fmtbench.scope import Scope


def bound_text(row) -> str:
    """`loader (97%)`: the verdict and e2e / the decode capacity of the same processes; – where the row has none."""
    verdict = row.get("e2e_bound")
    if not isinstance(verdict, str):
        return "–"
    ratio = row.get("e2e_over_capacity")
    return verdict + ("" if ratio is None or pd.isna(ratio) else f" ({ratio:.0%})")


def loader_memory_text(row) -> str:
    """A GPU-decode row's memory minus its dummy row's: the loader's share; – for other rows."""
    value = row.get("loader_memory_mb")
    return "–" if value is None or pd.isna(value) else f"{value:.1f}"


def capacity_table(rows: pd.DataFrame) -> list[str]:
    """One machine's decode capacity per loader, device fed, image size and batch size: the median over the
    formats' real-loader rows, their range and how many rows; nothing where no row measured one."""
    measured = rows[rows["timing_kind"].eq(Scope.END_TO_END.value)].dropna(subset=["decode_capacity_fps"])
    if measured.empty:
        return []
    keys = ["loader", "device", "image_size", "batch_size"]
    lines = []
    for (loader, device, size, batch), group in measured.groupby(keys, sort=True):
        values = group["decode_capacity_fps"]
        lines.append({"loader": loader, "batches on": device, "image size": f"{int(size)}²",
                      "batch": str(int(batch)), "capacity, median (img/s)": f"{values.median():.1f}",
                      "range over the rows (img/s)": span(values, ".1f"), "rows": str(len(group))})
    table = pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)
    decoders = "its cores, or its GPU's decoder" if measured["loader"].isin(GPU_DECODE_LOADERS).any() else "its cores"
    return ["### Decode capacity (the host's)", "",
            "Images per second the loader's producers made, measured in the same processes as each real-loader "
            f"row: this host's figure ({decoders}), not the format's. Per loader, image size and batch size: the "
            "median over the formats' rows, with their range and how many rows.", "",
            table, ""]
