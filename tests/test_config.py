"""The study's config: the default and quick studies, formats, variants, loaders, options, the baseline, the
weights' names, cores per GPU, and the schema's measurement part made from the settings records."""
import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fmtbench.workflow import configcheck, hardware, plan

REPO = Path(__file__).resolve().parent.parent
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_is_valid_and_describes_the_seed_study():
    config = default_config()
    validate(config, SCHEMA)
    plan.validate(config)
    assert {"torch", "torchscript", "onnx", "torch_trt"} <= set(config["formats"])
    assert config["image_sizes"] == [224, 256, 384, 512]
    assert config["batch_sizes"] == [32, 40, 48, 56, 64]
    cpu_rows = {(f, p) for f, devices in config["formats"].items() for p in devices.get("cpu", [])}
    assert cpu_rows == {("torch", "fp32"), ("onnx", "fp32")}
    assert all(set(config["formats"][name]["cuda"]) == {"fp16", "fp32"}
               for name in ("torch", "torchscript", "onnx", "torch_trt"))


def test_default_grid_measures_what_a_reader_needs_to_trust_it():
    config = default_config()
    validate(config, SCHEMA)
    assert config["formats"]["torch_tf32"] == {"cuda": ["fp32"]}  # what a default PyTorch user gets on Ampere+
    assert plan.format_options(config, "torch_tf32")["fp32_math"] == "tf32"
    assert config["measurement"]["cuda"]["processes"] >= 2        # between-process spread on every CUDA row
    assert config["measurement"]["cuda"]["max_processes"] >= 3    # ... and more where the processes disagree
    cpu = config["measurement"]["cpu"]
    assert cpu["warmup_iters"] >= 2 and cpu["min_iters"] >= 5      # not 1 warm-up and 3 samples any more
    assert plan.batch_sizes(config, "cpu") == [32, 64] and plan.batch_sizes(config, "cuda") == config["batch_sizes"]


def test_the_quick_study_is_a_valid_config_that_measures_the_default_studys_cpu_rows_as_it_does():
    """studies/quick.yaml (README: a first report in minutes) replaces config.yaml when given with --configfile, so it
    must be complete; its rows are config.yaml's CPU rows, measured with config.yaml's settings."""
    quick = yaml.safe_load((REPO / "studies" / "quick.yaml").read_text())
    default = default_config()
    for config in (quick, default):
        validate(config, SCHEMA)
        plan.validate(config)
    assert quick["measurement"] == default["measurement"]
    cpu_rows = {(f, p) for f, devices in default["formats"].items() for p in devices.get("cpu", [])}
    assert {(f, p) for f, devices in quick["formats"].items() for d, ps in devices.items() for p in ps
            if d == "cpu"} == cpu_rows
    assert all(set(devices) == {"cpu"} for devices in quick["formats"].values())
    assert set(quick["image_sizes"]) <= set(default["image_sizes"])
    assert set(quick["batch_sizes"]) <= set(plan.batch_sizes(default, "cpu"))
    assert set(quick["loaders"]) <= set(default["loaders"])


def test_unknown_loader_is_named_and_the_result_schema_knows_the_registry():
    from fmtbench import data, results
    config = default_config()
    config["loaders"] = ["real", "synthetic"]
    validate(config, SCHEMA)
    with pytest.raises(plan.ConfigError, match=r"loaders: unknown loader 'synthetic'"):
        plan.validate(config)
    assert results.schema()["properties"]["config"]["properties"]["loader"]["enum"] == list(data.LOADERS)


@pytest.mark.parametrize("mutate, culprit", [
    (lambda c: c["batch_sizes"].append(-4), "-4"),
    (lambda c: c["image_sizes"].append(16), "16"),
    (lambda c: c.update(batch_size=[32]), "batch_size"),
    (lambda c: c["measurement"]["cpu"].update(min_iter=3), "min_iter"),
    (lambda c: c["formats"]["onnx"].update(gpu=["fp16"]), "gpu"),
    (lambda c: c["formats"]["torch"].update(cpu=["fp8"]), "fp8"),
    (lambda c: c["measurement"]["cuda"].update(processes=0), "processes"),
])
def test_schema_rejects_bad_values_naming_the_culprit(mutate, culprit):
    config = default_config()
    mutate(config)
    with pytest.raises(WorkflowError) as error:
        validate(config, SCHEMA)
    assert culprit in str(error.value)


def test_unknown_format_is_named():
    config = default_config()
    config["formats"]["tensorflow"] = {"cuda": ["fp16"]}
    validate(config, SCHEMA)
    with pytest.raises(plan.ConfigError, match=r"formats\.tensorflow: unknown format"):
        plan.validate(config)


def test_format_on_a_device_it_does_not_support_is_named():
    config = default_config()
    config["formats"]["torch_trt"]["cpu"] = ["fp32"]
    with pytest.raises(plan.ConfigError, match=r"formats\.torch_trt\.cpu"):
        plan.validate(config)


def test_variants_run_a_format_with_other_settings():
    config = default_config()
    assert plan.backend_of(config, "torch_cudagraph") == "torch"
    assert plan.format_options(config, "torch_cudagraph")["cuda_graph"] is True
    assert plan.format_options(config, "torch")["cuda_graph"] is False
    assert plan.export_path("onnx", "fp16", "cuda", 224) == "artifacts/exports/onnx/fp16-any-224.onnx"
    config["variants"]["bad"] = {"format": "onnx", "options": {"cuda_graphs": True}}
    with pytest.raises(plan.ConfigError, match=r"variants\.bad\.options: unknown key\(s\) cuda_graphs"):
        plan.validate(config)


def test_gpu_decode_loader_feeds_cuda_rows_only():
    config = default_config()
    assert "real_gpu_decode" in plan.loaders_for(config, "cuda")
    assert "real_gpu_decode" not in plan.loaders_for(config, "cpu")


def test_unknown_backend_option_is_named():
    config = copy.deepcopy(default_config())
    config["options"]["onnx"]["prefer_nchw"] = True
    with pytest.raises(plan.ConfigError, match=r"options\.onnx: unknown key\(s\) prefer_nchw"):
        plan.validate(config)


def test_every_backend_module_declares_a_light_spec():
    """The Snakefile imports the specs and hashes each stage's code on every run: no module may import torch at
    import time, and the hashes import nothing."""
    import subprocess
    import sys
    code = ("import sys; from fmtbench.workflow import plan, triggers; "
            "[plan.spec(f) for f in plan.available_formats()]; "
            "[triggers.code_hash(s, f) for s in ('export', 'benchmark') for f in plan.available_formats()]; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_command_line_overrides_get_the_schema_types():
    """`--config batch_sizes=[32,64]` reaches the Snakefile as ['32', '64'] (YAML BaseLoader)."""
    schema = yaml.safe_load(open(SCHEMA))
    overridden = configcheck.coerce({"batch_sizes": ["32", "64"], "cpu_threads": "null", "host_label": "007",
                               "model": {"weights": "random", "sha256": "12345678"},
                               "measurement": {"cuda": {"max_seconds": "2.5", "min_iters": "3"}},
                               "options": {"onnx": {"enable_cuda_graph": "true"}}}, schema)
    assert overridden["batch_sizes"] == [32, 64]
    assert overridden["cpu_threads"] is None
    assert overridden["host_label"] == "007" and overridden["model"]["sha256"] == "12345678"  # strings stay
    assert overridden["measurement"]["cuda"] == {"max_seconds": 2.5, "min_iters": 3}
    assert overridden["options"]["onnx"]["enable_cuda_graph"] == "true"  # free-form: the backend's business


def test_prefer_nhwc_keeps_ort_default_unless_nhwc_is_clearly_faster():
    """`auto` used to keep NHWC on a strict `<` of two 10-run medians: a tie followed the noise."""
    from fmtbench.backends import onnx
    assert onnx.prefer_nhwc_decision(nchw_ms=2.19, nhwc_ms=1.39)          # the H100's fp16 case: clearly faster
    assert not onnx.prefer_nhwc_decision(nchw_ms=1.000, nhwc_ms=0.990)    # 1 % apart: a tie, NCHW stays
    assert not onnx.prefer_nhwc_decision(nchw_ms=1.0, nhwc_ms=1.2)


def test_a_misspelt_key_is_named_first_with_the_closest_valid_one():
    for mutate, message in [
        (lambda c: c.update(measurment=c.pop("measurement")), "measurment: unknown key; did you mean 'measurement'?"),
        (lambda c: c["measurement"]["cpu"].update(warmup_iter=2), "measurement.cpu.warmup_iter: unknown key; "
                                                                   "did you mean 'warmup_iters'?"),
        (lambda c: c["model"].update(wieghts="random"), "model.wieghts: unknown key; did you mean 'weights'?"),
    ]:
        config = default_config()
        mutate(config)
        with pytest.raises(plan.ConfigError) as error:
            plan.check(config, SCHEMA)
        assert str(error.value) == message


def test_a_baseline_the_study_does_not_measure_is_refused():
    config = default_config()
    config["baseline"] = {"format": "onnx", "precision": "fp16"}
    config["formats"]["onnx"] = {"cpu": ["fp32"]}
    with pytest.raises(plan.ConfigError, match="baseline: onnx fp16 is not measured by this study"):
        plan.check(config, SCHEMA)


# --- generated configs: each is accepted, or refused with a message naming a key; never a traceback -----------


def test_cuda_jobs_on_several_gpus_get_cores_of_their_own():
    """Two CUDA jobs at once on a 2-GPU host (`--resources gpu=2`) each pin to their GPU's share of the CUDA
    jobs' cores, so their DataLoader workers never share a core; one GPU keeps them all."""
    plan = hardware.core_plan(True, None, list(range(32)))
    shares = hardware.gpu_slices(plan["cuda"], 2)
    assert len(shares) == 2 and not set(shares[0]) & set(shares[1]) and len(shares[0]) == len(plan["cuda"]) // 2
    assert not set(plan["cpu"]) & set(shares[0] + shares[1]) and not set(plan["export"]) & set(shares[1])
    assert hardware.gpu_slices(plan["cuda"], 1) == [plan["cuda"]] == hardware.gpu_slices(plan["cuda"], 0)
    assert hardware.gpu_slices([3], 2) == [[3]]


def test_torchvisions_name_for_the_weights_is_the_imagenet_setting_and_other_names_are_refused(tmp_path,
                                                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = default_config()
    config["model"]["weights"] = "ResNet18_Weights.IMAGENET1K_V1"
    assert plan.check(config, SCHEMA)["model"]["weights"] == "imagenet", "no file of that name is looked for"
    for weights, message in [
        ("ResNet50_Weights.IMAGENET1K_V2", "config: model.weights: 'ResNet50_Weights.IMAGENET1K_V2' is "
                                           "torchvision's name for another model's weights; accepted: imagenet, "),
        ("my-resnet.pt", f"config: model.weights: 'my-resnet.pt' is no file here ({tmp_path}/my-resnet.pt); "
                         "accepted: imagenet, "),
    ]:
        config = default_config()
        config["model"]["weights"] = weights
        with pytest.raises(plan.ConfigError) as error:
            plan.check(config, SCHEMA)
        assert str(error.value).startswith(message) and "\n" not in str(error.value), str(error.value)


def test_the_schemas_measurement_part_is_made_from_the_settings_records(tmp_path):
    """Each measurement setting is declared once (fmtbench/settings.py); the schema file holds what it makes
    (`python -m fmtbench.settings` writes it)."""
    from fmtbench import settings
    written = tmp_path / "config.schema.yaml"
    written.write_text(Path(SCHEMA).read_text())
    settings.write_config_schema(written)
    assert written.read_text() == Path(SCHEMA).read_text(), "run `python -m fmtbench.settings`"
    assert yaml.safe_load(written.read_text())["properties"]["measurement"] == settings.config_schema()
