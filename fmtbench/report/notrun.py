"""What the study asked for and what of it was measured: the count at the top of the report and the "Not run"
section, which say the same numbers (a configuration not run is one with a result that says why, oom or
unavailable, or one without a result file, its run cut short)."""
from __future__ import annotations

import pandas as pd

SHOWN = 200  # configurations without a result file named one a line, then "and N more"


def summary(table: pd.DataFrame, missing: list[str]) -> str:
    """`60 of the 96 configurations the study asks for were measured on 2 machine(s); 36 were not run (4 oom, 32
    unavailable: see Not run).`"""
    ok = table[table["status"] == "ok"]
    asked = len(table) + len(missing)
    why = [f"{count} {status}" for status, count in
           table[table["status"] != "ok"]["status"].value_counts().sort_index().items()]
    why += [f"{len(missing)} without a result file"] if missing else []
    not_run = asked - len(ok)
    return (f"{len(ok)} of the {asked} configurations the study asks for were measured on "
            f"{table['host'].nunique()} machine(s)"
            + (f"; {not_run} were not run ({', '.join(why)}: see Not run)." if not_run else "."))


def section(table: pd.DataFrame, missing: list[str]) -> list[str]:
    """Every configuration of the study without a measurement: those with a result that says why, and those the
    study asks for that have no result at all (a run cut short)."""
    lines = ["## Not run", ""]
    unmeasured = table[table["status"] != "ok"]
    if unmeasured.empty and not missing:
        return lines + ["Every configuration was measured.", ""]
    lines += [f"{len(unmeasured) + len(missing)} configurations were not run.", ""]
    if not unmeasured.empty:
        grouped = (unmeasured.groupby(["host", "format", "device", "precision", "status", "reason"], sort=True)
                   .size().reset_index(name="configurations"))
        grouped["reason"] = grouped["reason"].str.replace("|", "\\|", regex=False).str.slice(0, 300)
        lines += [f"{len(unmeasured)} have a result that says why:", "", grouped.to_markdown(index=False), ""]
    if missing:
        lines += [f"{len(missing)} have no result file (the run ended before their job wrote them):", ""]
        lines += [f"- `{path}`" for path in missing[:SHOWN]]
        lines += ([f"- … and {len(missing) - SHOWN} more"] if len(missing) > SHOWN else []) + [""]
    return lines
