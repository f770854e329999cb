"""What the study ran on and with: the weights (and the warning where they are a random init), the formats, each
machine (its CPU, GPUs, libraries, the cores its CPU rows used, which card ran which rows)."""
from __future__ import annotations

import json

import pandas as pd

from fmtbench.model import describe, is_random


def warnings(model_provenance: dict, ok: pd.DataFrame) -> list[str]:
    """The random-weights warning, with the share of the accuracy images that share one class at each size."""
    if not is_random(model_provenance):
        return []
    # The reference logits are per image size (the images resized to it): say the share at each size.
    shares = ok.dropna(subset=["reference_top1_share"]).groupby("image_size")["reference_top1_share"].max()
    parts = [f"{share * 100:.3g} %" + (" of the accuracy images share one predicted class" if not index else "")
             + f" at {int(size)}²" for index, (size, share) in enumerate(shares.items())]
    concentration = (f" With these weights {', '.join(parts)}, so top-1 agreement is not reported as a finding."
                     if parts else "")
    return ["> **Warning — random weights.** This study ran on a seeded random initialisation, not on trained "
            f"ImageNet weights: {describe(model_provenance)}. Speed and memory do not depend on the weights' values; "
            "the accuracy figures then measure numerical agreement with PyTorch, not ImageNet accuracy."
            + concentration, ""]


def formats(ok: pd.DataFrame) -> list[str]:
    """What each format name in the tables is (the backends' labels, recorded in every row), and which rows are
    the libraries' out-of-the-box fp32."""
    labels = ok.dropna(subset=["format_label"]).drop_duplicates("format").sort_values("format")
    if labels.empty:
        return []
    lines = ["- **Formats:** " + "; ".join(f"`{row.format}` {row.format_label}" for row in labels.itertuples()) + "."]
    defaults = ok[ok["library_default"].astype(bool)]
    if not defaults.empty:
        tf32 = (" (TF32 convolutions on Ampere and later); the other fp32 rows are strict (TF32 off), so fp32 "
                "comparisons across formats compare strict with strict" if defaults["device"].eq("cuda").any()
                else "")
        lines.append("- **Out of the box:** " + ", ".join(f"`{name}`" for name in sorted(defaults["format"].unique()))
                     + f" compute fp32 as their library does by default{tf32}.")
    return lines


def cards(group: pd.DataFrame) -> str | None:
    """Where a machine's CUDA rows ran on several cards (of one model: one host tag): which rows ran on which."""
    rows = group[(group["device"] == "cuda") & (group["status"] == "ok")].dropna(subset=["gpu_uuid"])
    uuids = sorted(set(rows["gpu_uuid"]))
    if len(uuids) < 2:
        return None
    parts = []
    for index, card in enumerate(uuids):
        on_card = rows[rows["gpu_uuid"] == card]
        kinds = sorted({f"{f} {p}" for f, p in zip(on_card["format"], on_card["precision"], strict=True)})
        parts.append(f"card {index + 1} (`{card}`): {', '.join(kinds)}")
    return (f"  Its CUDA rows ran on {len(uuids)} cards of this model, a job per format and precision on one card "
            "(every row of a format and precision on the same card; rows of different cards compare cards too): "
            + "; ".join(parts) + ".")


def machines(table: pd.DataFrame) -> list[str]:
    """A line per machine: its CPU, GPUs and libraries; the cores its CPU rows used; its cards."""
    lines = []
    for host, group in table.groupby("host", sort=True):
        first = group.iloc[0]
        gpus = sorted(set(group["gpu_name"].dropna()))
        gpu_text = ", ".join(f"{name} (driver {group['driver'].dropna().iloc[0]}, CUDA "
                             f"{group['cuda_runtime'].dropna().iloc[0]}, cuDNN {int(group['cudnn'].dropna().iloc[0])})"
                             for name in gpus)
        libraries = json.loads(first["libraries"])
        lines.append(f"- **Machine `{host}`:** CPU {first['cpu_model']}; " + (f"GPU {gpu_text}; " if gpus else "")
                     + "libraries "
                     + ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()) if v != "not-installed") + ".")
        lines += [line for line in [cards(group)] if line]
        cpu_rows = group[(group["device"] == "cpu") & (group["status"] == "ok")]
        if not cpu_rows.empty:
            row = cpu_rows.iloc[0]
            others = (" (the cores its CUDA jobs and exports used were others)"
                      if group.loc[group["status"] == "ok", "device"].eq("cuda").any() else "")
            lines.append(f"  CPU rows ran on {int(row['cpu_cores_used'])} logical CPUs "
                         f"({int(row['cpu_physical_cores'])} physical cores) with {int(row['torch_threads'])} "
                         f"intra-op threads, pinned{others}.")
    return lines


def section(model_provenance: dict, ok: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """"Setup": the weights, the formats, the machines."""
    return ["## Setup", "", f"- **Weights:** {describe(model_provenance)}.", *formats(ok), *machines(table), ""]
