"""Does a study reproduce? Two result sets of the same study, row against row (a benchmark tool, not a test).

    python tools/replicate.py RESULTS_A RESULTS_B --out DIR [--anchors anchors.jsonl]

RESULTS_* are result directories (a workspace's `artifacts/results/`, or any folder of result JSONs); `--anchors`
the plain loop beside each CUDA model-alone row of both (`tools/ablation.py --anchors`, its ablation.jsonl).
Writes DIR/replicate.md (what could not be checked, the bar per class, the rules, then every check: the two
figures, the difference, the interval, the verdict: pass, fail or reported) and DIR/replicate.csv (every check).
Exits 0 whether or not a bar is met, and where a class could not be checked (the summary's first lines say so).
The rules are fmtbench/report/replicate.py's."""
import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from fmtbench.report import frame, replicate


def to_markdown(table: pd.DataFrame) -> str:
    """Every check, figures to 4 significant digits, the difference in per cent."""
    def number(value):
        return value if isinstance(value, str) or value is None or pd.isna(value) else f"{value:.4g}"
    shown = table.assign(a=table["a"].map(number), b=table["b"].map(number),
                         difference=table["difference"].map(lambda v: "–" if pd.isna(v) else f"{v:+.1%}"))
    return shown[replicate.COLUMNS[:replicate.COLUMNS.index("note") + 1]].to_markdown(index=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--out", required=True)
    parser.add_argument("--anchors", help="anchors.jsonl of tools/ablation.py --anchors (the plain loop)")
    args = parser.parse_args()
    sets = [sorted(Path(folder).rglob("*.json")) for folder in (args.first, args.second)]
    lines = Path(args.anchors).read_text(encoding="utf-8").splitlines() if args.anchors else None
    anchors = None if lines is None else [json.loads(line) for line in lines if line.strip()]
    comparison = replicate.compare(*(frame.load(paths) for paths in sets), anchors, (args.first, args.second))
    summary = replicate.summary(comparison, anchors_given=anchors is not None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    comparison.table.to_csv(out / "replicate.csv", index=False)
    lines = [f"# Replicate check: `{args.first}` (a) against `{args.second}` (b)", "",
             *[f"- {line}" for line in summary], "", replicate.__doc__.split("\n\n", 1)[1].strip(), "",
             to_markdown(comparison.table) if not comparison.table.empty else "No row was measured in both "
             "sets.", ""]
    (out / "replicate.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(summary))


if __name__ == "__main__":
    sys.exit(main())
