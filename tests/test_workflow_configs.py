"""The real workflow through Snakemake on studies of their own (a config each, in a temporary directory): a study
refused before any job, a folder of 8- and 16-bit images, a CPU hog beside the study."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_workflow import HOST, REPO, snakemake, tiny_config

pytestmark = pytest.mark.workflow


def test_a_study_with_nothing_to_measure_is_refused_before_any_job(tmp_path):
    config = tiny_config(tmp_path / "config.yaml", formats={"torch": {"cpu": ["fp32"]}, "onnx": {"cpu": ["fp32"]}},
                         loaders=["real_gpu_decode"])
    out = snakemake(REPO, tmp_path / "work", configfile=config, check=False)
    assert out.returncode != 0 and "loaders: no configured loader runs on any configured device" in out.stderr
    assert not (tmp_path / "work" / "artifacts").exists()


def test_a_folder_of_8_and_16_bit_images_is_measured_with_right_inputs(tmp_path):
    import numpy as np
    from PIL import Image
    folder = tmp_path / "photos"
    folder.mkdir()
    y, x = np.mgrid[0:48, 0:64]
    grey = (x * 3 + y).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(folder / "a8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "b16.png")
    config = tiny_config(tmp_path / "config.yaml", formats={"torch": {"cpu": ["fp32"]}}, image_sizes=[32],
                         loaders=["real"],
                         data={"images": str(folder), "num_images": 2, "seed": 0, "accuracy_images": 2})
    workdir = tmp_path / "work"
    snakemake(REPO, workdir, configfile=config)
    result = json.loads((workdir / "artifacts/results" / HOST / "torch/cpu-fp32/32/real-bs2.json").read_text())
    assert result["status"] == "ok", result["reason"]
    import torch
    reference = torch.load(workdir / "artifacts" / "reference" / "32.pt", map_location="cpu", weights_only=True)
    # The same picture at 8 and 16 bits: the same input, so the same logits (it was 257 times brighter).
    assert [Path(p).name for p in reference["images"]] == ["a8.png", "b16.png"]
    assert torch.allclose(reference["logits"][0], reference["logits"][1])


def test_invalid_config_stops_before_any_job(tmp_path):
    out = snakemake(REPO, tmp_path, "--config", "batch_sizes=[2, -8]", check=False)
    assert out.returncode != 0
    assert "-8" in out.stderr and "batch_sizes" in out.stderr
    assert not (tmp_path / "artifacts").exists()
    out = snakemake(REPO, tmp_path, "--config", "formats={tensorrt: {cuda: [fp16]}}", check=False)
    assert out.returncode != 0 and "formats.tensorrt: unknown format" in out.stderr
    out = snakemake(REPO, tmp_path, "--config", "measurement={cpu: {warmup_iters: 1, warmup_seconds: .inf, "
                    "min_iters: 1, min_seconds: 0, max_seconds: 1}}", check=False)
    assert out.returncode != 0
    assert "config: measurement.cpu.warmup_seconds: inf is not a finite number" in out.stderr.splitlines()
    assert not (tmp_path / "artifacts").exists()


def test_a_schema_error_is_one_line_naming_the_key_not_the_schema(tmp_path):
    import yaml
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny_config.yaml").read_text())
    del config["image_sizes"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    out = snakemake(REPO, tmp_path / "work", configfile=tmp_path / "config.yaml", check=False)
    lines = out.stderr.splitlines()
    assert out.returncode != 0 and "config: 'image_sizes' is a required property" in lines
    assert lines.index("config: 'image_sizes' is a required property") <= 2, out.stderr
    assert len(lines) < 15, out.stderr  # it printed the whole schema and config: 265 lines
    assert not (tmp_path / "work" / "artifacts").exists()


def test_a_cpu_hog_beside_the_study_is_said_at_its_start_and_marks_its_rows(tmp_path):
    """Another process busy on the core the CPU rows are pinned to: the study warns when it starts, the rows'
    JSONs say `contended` and name the hog, the report marks their times § and counts them in its findings."""
    import pandas as pd
    config = tiny_config(tmp_path / "config.yaml", cpu_min_seconds=1.5, formats={"torch": {"cpu": ["fp32"]}},
                         image_sizes=[32], loaders=["dummy"])
    core = max(os.sched_getaffinity(0))  # CPU rows take the last of the usable cores (cpu_threads: 1)
    hog = subprocess.Popen([sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    try:
        out = snakemake(REPO, tmp_path / "work", configfile=config, cores="1")
    finally:
        hog.kill()
        hog.wait()
    assert "fmtbench: the machine is not quiet: other processes kept" in out.stderr
    result = json.loads((tmp_path / "work/artifacts/results" / HOST / "torch/cpu-fp32/32/dummy-bs2.json").read_text())
    assert result["status"] == "ok", result["reason"]
    assert result["contention"]["contended"] is True, result["contention"]
    assert result["contention"]["others_share_max"] > 0.3
    assert any(entry["pid"] == hog.pid for entry in result["contention"]["busiest_others"])
    assert result["processes"][0]["contention"]["cores"] == [core]
    report = (tmp_path / "work/report/report.md").read_text()
    row = next(line for line in report.splitlines() if re.match(r"\| torch +\| cpu +\| fp32 +\| 2 ", line))
    assert "§" in row.split("|")[5], row  # latency p50
    assert "1 of 1 configurations measured while other processes used the machine (marked §" in report
    assert pd.read_csv(tmp_path / "work/report/results.csv")["contended"].tolist() == [True]
