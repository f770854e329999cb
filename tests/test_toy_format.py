"""A new format is one module plus config: a toy backend from outside the package runs through the real workflow."""
import json
import os
import textwrap

import pytest
from helpers_workflow import REPO, snakemake

pytestmark = pytest.mark.workflow

TOY_BACKEND = '''
"""A toy format written only against fmtbench/backends/base.py: the state dict saved by its export, loaded
into torchvision's ResNet-18, run eagerly on the CPU."""
from fmtbench.backends.base import ExportLayout, FormatSpec

SPEC = FormatSpec(name="toy", label="Toy (state dict file)", libraries=("torch", "torchvision"),
                  artifact=ExportLayout(ext="toy"), devices=("cpu",), precisions=("fp32",),
                  options={"channels_last": False})


def probe(device):
    return None


def export(model, request, out):
    import torch
    torch.save(model.float().state_dict(), out)
    return {"method": "torch.save of the fp32 state dict"}


class Session:
    def __init__(self, module, channels_last):
        self.module, self.channels_last = module, channels_last
        self.info = {"math": "fp32", "channels_last": channels_last}

    def prepare(self, batch):
        import torch
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def run(self, inputs):
        import torch
        with torch.inference_mode():
            return self.module(inputs)

    def logits(self, output):
        return output.float().cpu()


def load(request):
    import torch
    import torchvision
    module = torchvision.models.resnet18()
    module.load_state_dict(torch.load(request.artifact, map_location="cpu", weights_only=True))
    if request.options["channels_last"]:
        module = module.to(memory_format=torch.channels_last)
    return Session(module.eval(), request.options["channels_last"])
'''

CONFIG = """
host_label: testhost
model: {weights: random, seed: 0}
data: {num_images: 4, seed: 0, accuracy_images: 2}
backend_modules: [toyformats.toy_backend]
formats:
  torch: {cpu: [fp32]}
  toy: {cpu: [fp32]}
options:
  toy: {channels_last: true}
image_sizes: [32]
batch_sizes: [2]
loaders: [dummy]
baseline: {format: torch, precision: fp32}
loader: {workers: 0, cuda_workers: 2}
cpu_threads: 1
measurement:
  cpu: {warmup_iters: 1, warmup_seconds: 0, min_iters: 3, min_seconds: 0, max_seconds: 5}
  cuda: {warmup_iters: 1, warmup_seconds: 0, min_iters: 3, min_seconds: 0, max_seconds: 5}
"""


def test_a_toy_format_from_outside_the_package_runs_through_the_workflow(tmp_path):
    package = tmp_path / "plugins" / "toyformats"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "toy_backend.py").write_text(textwrap.dedent(TOY_BACKEND))
    config = tmp_path / "toy.yaml"
    config.write_text(CONFIG)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "plugins"), os.environ.get("PYTHONPATH")]))}
    workdir = tmp_path / "work"
    snakemake(REPO, workdir, env=env, configfile=config)

    result = json.loads((workdir / "artifacts/results/testhost/toy/cpu-fp32/32/dummy-bs2.json").read_text())
    assert result["status"] == "ok", result["reason"]
    assert result["backend"]["channels_last"] is True, "the config's options reach the toy's load"
    assert result["accuracy"]["within_limit"] and result["accuracy"]["max_rel_error"] < 1e-5
    provenance = json.loads((workdir / "artifacts/exports/toy/fp32-any-any.toy.provenance.json").read_text())
    assert provenance["status"] == "ok" and provenance["details"]["method"].startswith("torch.save")
    report = (workdir / "report" / "report.md").read_text()
    assert "| toy " in report

    # The toy's own code is hashed like a built-in backend's: a comment or docstring edit reruns nothing, a code
    # edit its export and rows (and the report), nothing else.
    reworded = textwrap.dedent(TOY_BACKEND).replace("run eagerly on the CPU", "run eagerly on a CPU")
    (package / "toy_backend.py").write_text("# a comment\n" + reworded)
    dry = snakemake(REPO, workdir, "-n", env=env, configfile=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    (package / "toy_backend.py").write_text(reworded + "\n_A_CHANGE = 1\n")
    dry = snakemake(REPO, workdir, "-n", env=env, configfile=config)
    planned = {line.split()[1].rstrip(":") for line in (dry.stdout + dry.stderr).splitlines()
               if line.startswith(("rule ", "localrule "))}
    assert planned == {"export", "benchmark", "report"}, dry.stdout[-3000:]
    assert "format=toy" in dry.stdout and "format=torch," not in dry.stdout


def test_a_backend_module_that_cannot_be_imported_is_named_before_any_job(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(CONFIG.replace("toyformats.toy_backend", "nowhere.to_be_found"))
    out = snakemake(REPO, tmp_path / "work", configfile=config, check=False)
    assert out.returncode != 0 and "backend_modules: cannot import 'nowhere.to_be_found'" in out.stderr
    assert not (tmp_path / "work" / "artifacts").exists()
