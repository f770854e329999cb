"""A user's files as they come, through the real Snakefile: config slips and torchvision's names for the weights
are named in one line before any job (dry runs: nothing is measured)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow
REPO = Path(__file__).resolve().parent.parent
TINY = (REPO / "tests" / "data" / "tiny_config.yaml").read_text()


def dry_run(workdir: Path, *args):
    """`snakemake -n report` as the README runs it: the workflow's own config.yaml, here the one in `workdir`."""
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                           "-n", "report", *args], capture_output=True, text=True, env=dict(os.environ))


@pytest.mark.parametrize("slip, message", [
    (lambda text: text.replace("image_sizes: [32, 64]\n", "image_sizes: [32, 64]\nimage_sizes: [96]\n"),
     "config.yaml:11: key 'image_sizes' is written twice in one mapping (also on line 10)"),
    (lambda text: text.replace("model: {weights: random, seed: 0}\n", "model:\n\tweights: random\n"),
     "config.yaml:4: key 'weights': a TAB in the indentation: YAML indents with spaces"),
])
def test_a_config_yaml_slip_stops_the_study_naming_file_line_and_key(tmp_path, slip, message):
    (tmp_path / "config.yaml").write_text(slip(TINY))
    out = dry_run(tmp_path)
    console = out.stdout + out.stderr
    assert out.returncode != 0 and any(line.startswith(message) for line in console.splitlines()[:3]), console
    assert "not valid JSON or YAML" not in console and not (tmp_path / "artifacts").exists()


def test_torchvisions_name_for_the_weights_plans_the_study_with_the_imagenet_weights(tmp_path):
    (tmp_path / "config.yaml").write_text(TINY.replace("weights: random", "weights: ResNet18_Weights.IMAGENET1K_V1"))
    out = dry_run(tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MissingInputException" not in out.stdout + out.stderr and "rule model:" in out.stdout
    (tmp_path / "config.yaml").write_text(TINY.replace("weights: random", "weights: ResNet50_Weights.DEFAULT"))
    out = dry_run(tmp_path)
    assert out.returncode != 0
    assert "config: model.weights: 'ResNet50_Weights.DEFAULT' is torchvision's name for another model's weights; " \
           "accepted: imagenet, random, ResNet18_Weights.IMAGENET1K_V1" in out.stdout + out.stderr, out.stderr


def test_the_readme_install_brings_what_snakemakes_html_report_needs():
    """`snakemake --report` (README) needs pygments, Snakemake's `reports` extra: the study's install brought none, and
    the command failed after a first run ("Python package pygments must be installed to create reports")."""
    import tomllib

    from packaging.requirements import Requirement
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    snakemake = next(Requirement(text) for text in project["dependencies"] if Requirement(text).name == "snakemake")
    assert "reports" in snakemake.extras
