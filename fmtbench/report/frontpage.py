"""The front page of Snakemake's HTML report (reStructuredText): what ran, the answer and the findings, as
report.md has them."""
from __future__ import annotations

import html
import re

import pandas as pd

from fmtbench.model import describe, is_random
from fmtbench.report.cells import WARNING_STYLE


def rst(text: str) -> str:
    """A line of report.md as reStructuredText: `code` as ``code``, the other markup characters taken literally."""
    return "".join(f"``{part[1:-1]}``" if len(part) > 2 and part[0] == part[-1] == "`"
                   else re.sub(r"([\\*|_`])", r"\\\1", part) for part in re.split(r"(`[^`]+`)", text))


def front_page(model_provenance: dict, ok: pd.DataFrame, summary: str, answer: list[str], found: list[str]) -> str:
    """The front page of Snakemake's HTML report (reStructuredText, taken as it is by its Jinja step): what ran,
    the answer and the findings, from the rows as report.md has them."""
    lines = []
    if is_random(model_provenance):
        lines += [".. raw:: html", "", f"   <p style=\"{WARNING_STYLE}\"><b>⚠ Random weights.</b> "
                  f"{html.escape(describe(model_provenance))}. Speed and memory do not depend on the weights' values; "
                  "the accuracy figures measure numerical agreement with PyTorch fp32 on the CPU, not ImageNet "
                  "accuracy.</p>", ""]
    lines += [rst(f"fmtbench: ResNet-18 inference by deployment format. {summary}"), ""]
    if answer:
        lines += ["**In short**", "", *[f"- {rst(line)}" for line in answer], ""]
    ran = ok.assign(kind=[f"`{row['format']}` {row['format_label'] or ''} {row['precision_label']} on {row['device']}"
                          for _, row in ok.iterrows()]) if not ok.empty else ok
    lines += ["**Measured**", ""] + [f"- {rst(f'`{host}`: ' + '; '.join(sorted(set(rows['kind']))))}"
                                     for host, rows in ran.groupby("host", sort=True)] + [""]
    lines += ["**Findings**", "", *[f"- {rst(line)}" for line in found], "",
              "Results are grouped by image size (category) and format (subcategory); figures that span sizes or "
              'formats are under "All image sizes" and "All formats". ``report/report.md``, written beside this '
              'report, states the method in full (section "How it was measured") and lists what did not run.', ""]
    return "{% raw %}\n" + "\n".join(lines) + "{% endraw %}\n"
