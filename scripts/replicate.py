"""Does a study reproduce? Two result sets of the same study, row against row (a benchmark tool, not a test).

    python scripts/replicate.py RESULTS_A RESULTS_B --out DIR

RESULTS_* are result directories (a workspace's `artifacts/results/`, or any folder of result JSONs). Writes
DIR/replicate.md (the bar per class of row, then every check: the two figures, the difference, the interval the
first set states, the verdict) and DIR/replicate.csv. The rules are fmtbench/report/replicate.py's."""
import argparse
import sys
from pathlib import Path

from fmtbench.report import frame, replicate


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sets = [sorted(Path(folder).rglob("*.json")) for folder in (args.first, args.second)]
    table = replicate.compare(*(frame.load(paths) for paths in sets))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "replicate.csv", index=False)
    lines = [f"# Replicate check: `{args.first}` (a) against `{args.second}` (b)", "",
             *[f"- {line}" for line in replicate.summary(table)], "", replicate.__doc__.split("\n\n", 1)[1], "",
             replicate.to_markdown(table) if not table.empty else "", ""]
    (out / "replicate.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(replicate.summary(table)))


if __name__ == "__main__":
    sys.exit(main())
