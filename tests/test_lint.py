"""The code style CI enforces: ruff (pyproject's [tool.ruff]) on the Python, snakefmt on the Snakefile and rules."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*command):
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True)


def test_ruff_is_clean():
    out = _run("ruff", "check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_snakefmt_is_clean():
    out = _run("snakefmt", "--check", "Snakefile", "rules")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_snakemake_lint_finds_nothing_but_the_missing_conda_environments():
    """docs/method.md says why the study ships a pip install instead of per-rule conda environments."""
    out = _run("snakemake", "--lint", "--configfile", "tests/data/tiny_config.yaml")
    lints = {line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip().startswith("* ")}
    assert lints == {"* Specify a conda environment or container for each rule.:"}, out.stdout[-4000:]
