"""Items of Snakemake's HTML report (`snakemake --report`): where the report rule writes them, how they are grouped.

Light on purpose (no pandas, no matplotlib): the Snakefile imports it to label the registered files.
Categories are image sizes ("224×224", or "All image sizes" for figures that span sizes); subcategories
are formats ("All formats" for figures that compare them).
"""
from __future__ import annotations

import json
from pathlib import Path

from fmtbench.model import describe, is_random

ALL_SIZES = "All image sizes"
ALL_FORMATS = "All formats"
# Host tags start with a letter or a digit (config schema, hardware.slug), so this cannot clash with one.
ALL_MACHINES = "_all-machines"

# File names carry every wildcard, so each item's name (what `snakemake --report` lists) is unique.
FIGURE_PATTERN = "{host}/{figure}_{host}.png"
TABLE_PATTERN = "{size}/{format}/{format}_{size}_{host}.html"
RANDOM_WEIGHTS_MARK = "⚠ random weights"

FIGURE_TITLES = {
    "throughput": "model throughput vs batch size (dummy loader)",
    "end_to_end": "model vs end-to-end throughput per loader (largest batch)",
    "fastest": "fastest configuration of each format and precision per image size",
    "memory": "memory growth vs batch size (largest image size, dummy loader)",
    "speedup": "speedup over the baseline per format and image size",
    "best_per_format": "best configuration of each format per machine",
}


def size_category(size) -> str:
    return f"{size}×{size}"


def figure_path(plots_dir: Path, host: str, figure: str) -> Path:
    return Path(plots_dir) / FIGURE_PATTERN.format(host=host, figure=figure)


def table_path(tables_dir: Path, size: int, format_name: str, host: str) -> Path:
    return Path(tables_dir) / TABLE_PATTERN.format(size=size, format=format_name, host=host)


def _figure_kind_and_size(figure: str) -> tuple[str, str | None]:
    kind, _, size = figure.rpartition("_")
    return (kind, size) if size.isdigit() else (figure, None)


def figure_category(wildcards) -> str:
    """throughput_224 -> "224×224"; figures that span image sizes -> ALL_SIZES."""
    _, size = _figure_kind_and_size(wildcards.figure)
    return size_category(size) if size else ALL_SIZES


def weights_label(model_provenance_path) -> str:
    """The study's weights, marked where they are a random init (the HTML report's front page looks for it)."""
    provenance = json.loads(Path(model_provenance_path).read_text())
    if is_random(provenance):
        return f"{RANDOM_WEIGHTS_MARK}: {describe(provenance)}; accuracy = agreement with PyTorch, not ImageNet"
    return describe(provenance)


def figure_labels(wildcards, input) -> dict:
    kind, _ = _figure_kind_and_size(wildcards.figure)
    machine = "all machines" if wildcards.host == ALL_MACHINES else wildcards.host
    return {"figure": FIGURE_TITLES.get(kind, kind), "machine": machine, "weights": weights_label(input.model)}


def table_labels(wildcards, input) -> dict:
    return {"machine": wildcards.host, "weights": weights_label(input.model)}


def csv_labels(wildcards, input) -> dict:
    return {"data": "every configuration, one row each", "weights": weights_label(input.model)}
