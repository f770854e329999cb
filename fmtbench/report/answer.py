"""The study's answer, one line per machine and device: the format to deploy with, as the tables show it."""
from __future__ import annotations

import pandas as pd

from fmtbench.report import marks
from fmtbench.report.labels import precision_label, shape


def answer(ok: pd.DataFrame, baseline_format: str, baseline_precision: str) -> list[str]:
    """The study's answer in one line per machine and device: the format and precision with the highest median
    speedup over the baseline, as the tables show it (the model alone, same shape; device time where either row is
    host-bound), over the configurations without a mark that keeps them out (‡ processes disagree, § measured
    beside other work, ◊ host-bound without device time): their range, and the ones left out named with why and
    their range in the tables; a tie where the runner-up's median reaches the best's range."""
    lines = []
    model = marks.split(ok)[0].dropna(subset=["speedup"])
    model = model.assign(flag=[marks.flag(row, host_bound_ok=row.get("speedup_basis") == "device time")
                               for _, row in model.iterrows()],
                         kind=[f"{row['format']} {precision_label(row)}" for _, row in model.iterrows()])
    baseline = f"{baseline_format} {baseline_precision}"
    for (host, device), rows in model.groupby(["host", "device"], sort=True):
        where = f"On `{host}`, {device}" if ok["host"].nunique() > 1 else f"On this machine, {device}"
        candidates = rows[~((rows["format"] == baseline_format) & (rows["precision"] == baseline_precision))]
        kept = rows[rows["flag"].isna()]
        medians = kept.groupby("kind")["speedup"].median()
        others = medians.drop(kept.loc[(kept["format"] == baseline_format)
                                       & (kept["precision"] == baseline_precision), "kind"].unique())
        if candidates.empty:
            lines.append(f"{where}: only {baseline}, the baseline, was measured: no other format to compare.")
            continue
        if others.empty:
            lines.append(f"{where}: no configuration to compare with {baseline} without a mark; left out: "
                         + "; ".join(f"{kind} {marks.left_out(group, 'speedup')}"
                                     for kind, group in candidates.groupby("kind", sort=True)) + ".")
            continue
        best = medians.idxmax()
        if best not in others:
            line = (f"{where}: stay with {baseline}, the baseline: no other format beat it (the best other, "
                    f"{others.idxmax()}, ran at a median {others.max():.2f}× its throughput)")
        else:
            chosen = kept[kept["kind"] == best]
            low, high = f"{chosen['speedup'].min():.2f}", f"{chosen['speedup'].max():.2f}"
            apart = " without a mark" if candidates["flag"].notna().any() else ""
            spread = (f", in its one configuration{apart} ({shape(chosen.iloc[0])})" if len(chosen) == 1 else
                      f", the same in each of its {len(chosen)} configurations{apart}" if low == high else
                      f", {low}–{high}× over its {len(chosen)} configurations{apart}")
            runner_up = others.drop(best).sort_values(ascending=False)
            tie = (f"; a tie with {runner_up.index[0]} (a median {runner_up.iloc[0]:.2f}×, within its range)"
                   if not runner_up.empty and runner_up.iloc[0] >= chosen["speedup"].min() and len(chosen) > 1
                   else "")
            device_time = chosen["speedup_basis"].eq("device time") if "speedup_basis" in chosen else None
            basis = "back-to-back throughput" + (
                f", device time for the {int(device_time.sum())} with a ◊ row" if device_time is not None
                and device_time.any() else "")
            line = (f"{where}: deploy with {best}: a median {chosen['speedup'].median():.2f}× the throughput of "
                    f"{baseline} (the baseline){spread}; the model alone, same batch and image size, from {basis}"
                    f"{tie}")
        left = candidates[candidates["flag"].notna()]
        if not left.empty:
            line += "; left out: " + "; ".join(f"{kind} {marks.left_out(group, 'speedup')}"
                                               for kind, group in left.groupby("kind", sort=True))
        lines.append(line + ".")
    return lines
