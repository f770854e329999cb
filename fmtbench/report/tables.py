"""The results: per machine and image size its tables and figures, its decode capacity and its figures across
image sizes; and, where several machines ran, the best configuration of each format on each."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from fmtbench.report import cells, items, loaders, plots
from fmtbench.report.marks import on_every_row

# (machine, figure name) -> (the file to draw, its link from report.md)
Figure = Callable[[str, str], tuple[Path, str]]


def across_machines(ok: pd.DataFrame, figure: Figure) -> list[str]:
    """"Across machines": the best configuration of each format on each machine; nothing with one machine."""
    if ok["host"].nunique() < 2:
        return []
    model = ok.dropna(subset=["throughput_fps"])
    best = model.loc[model.groupby(["host", "format"])["throughput_fps"].idxmax()]
    table = best.assign(best=best.apply(
        lambda r: f"{r['throughput_fps']:.0f} img/s ({r['precision']} {r['device']}, {int(r['image_size'])}², "
                  f"bs {int(r['batch_size'])})", axis=1)).pivot(index="format", columns="host", values="best")
    path, link = figure(items.ALL_MACHINES, "best_per_format")
    plots.best_per_format_across_hosts(best, path)
    return ["## Across machines", "",
            "Best configuration (highest model throughput, back to back) of each format per machine:", "",
            table.fillna("–").to_markdown(), "", f"![best per format per machine]({link})", ""]


def per_machine(ok: pd.DataFrame, figure: Figure) -> list[str]:
    """"Results on `host`" for each machine: per image size its tables and figures, then its decode capacity
    and its figures across image sizes."""
    every = on_every_row(ok)
    lines = []
    for host, host_ok in ok.groupby("host", sort=True):
        lines += [f"## Results on `{host}`", ""]
        for size, rows in host_ok.groupby("image_size", sort=True):
            lines += [f"### {size}×{size}", "", *cells.markdown(rows, every)]
            for name, draw in plots.PER_SIZE.items():
                path, link = figure(host, f"{name}_{size}")
                if draw(rows, size, path):
                    lines += [f"![{items.FIGURE_TITLES[name]}, {size}×{size}]({link})", ""]
        lines += loaders.capacity_table(host_ok)
        lines += ["### Across image sizes", ""]
        for name, draw in plots.PER_HOST.items():
            path, link = figure(host, name)
            if draw(host_ok, path):
                lines += [f"![{items.FIGURE_TITLES[name]}]({link})", ""]
    return lines
