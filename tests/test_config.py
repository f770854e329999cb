import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from fmtbench import configcheck, hardware, paths, study

REPO = Path(__file__).resolve().parent.parent
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_config_is_valid_and_describes_the_seed_study():
    config = default_config()
    validate(config, SCHEMA)
    study.validate(config)
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
    assert study.format_options(config, "torch_tf32")["fp32_math"] == "tf32"
    assert config["measurement"]["cuda"]["processes"] >= 2        # between-process spread on every CUDA row
    assert config["measurement"]["cuda"]["max_processes"] >= 3    # ... and more where the processes disagree
    cpu = config["measurement"]["cpu"]
    assert cpu["warmup_iters"] >= 2 and cpu["min_iters"] >= 5      # not 1 warm-up and 3 samples any more
    assert study.batch_sizes(config, "cpu") == [32, 64] and study.batch_sizes(config, "cuda") == config["batch_sizes"]


def test_the_quick_study_is_a_valid_config_that_measures_the_default_studys_cpu_rows_as_it_does():
    """studies/quick.yaml (README: a first report in minutes) replaces config.yaml when given with --configfile, so it
    must be complete; its rows are config.yaml's CPU rows, measured with config.yaml's settings."""
    quick = yaml.safe_load((REPO / "studies" / "quick.yaml").read_text())
    default = default_config()
    for config in (quick, default):
        validate(config, SCHEMA)
        study.validate(config)
    assert quick["measurement"] == default["measurement"]
    cpu_rows = {(f, p) for f, devices in default["formats"].items() for p in devices.get("cpu", [])}
    assert {(f, p) for f, devices in quick["formats"].items() for d, ps in devices.items() for p in ps
            if d == "cpu"} == cpu_rows
    assert all(set(devices) == {"cpu"} for devices in quick["formats"].values())
    assert set(quick["image_sizes"]) <= set(default["image_sizes"])
    assert set(quick["batch_sizes"]) <= set(study.batch_sizes(default, "cpu"))
    assert set(quick["loaders"]) <= set(default["loaders"])


def test_unknown_loader_is_named_and_the_result_schema_knows_the_registry():
    from fmtbench import data, results
    config = default_config()
    config["loaders"] = ["real", "synthetic"]
    validate(config, SCHEMA)
    with pytest.raises(study.ConfigError, match=r"loaders: unknown loader 'synthetic'"):
        study.validate(config)
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
    with pytest.raises(study.ConfigError, match=r"formats\.tensorflow: unknown format"):
        study.validate(config)


def test_format_on_a_device_it_does_not_support_is_named():
    config = default_config()
    config["formats"]["torch_trt"]["cpu"] = ["fp32"]
    with pytest.raises(study.ConfigError, match=r"formats\.torch_trt\.cpu"):
        study.validate(config)


def test_variants_run_a_format_with_other_settings():
    config = default_config()
    assert study.backend_of(config, "torch_cudagraph") == "torch"
    assert study.format_options(config, "torch_cudagraph")["cuda_graph"] is True
    assert study.format_options(config, "torch")["cuda_graph"] is False
    assert study.export_path("onnx", "fp16", "cuda", 224) == "artifacts/exports/onnx/fp16-any-224.onnx"
    config["variants"]["bad"] = {"format": "onnx", "options": {"cuda_graphs": True}}
    with pytest.raises(study.ConfigError, match=r"variants\.bad\.options: unknown key\(s\) cuda_graphs"):
        study.validate(config)


def test_gpu_decode_loader_feeds_cuda_rows_only():
    config = default_config()
    assert "real_gpu_decode" in study.loaders_for(config, "cuda")
    assert "real_gpu_decode" not in study.loaders_for(config, "cpu")


def test_unknown_backend_option_is_named():
    config = copy.deepcopy(default_config())
    config["options"]["onnx"]["prefer_nchw"] = True
    with pytest.raises(study.ConfigError, match=r"options\.onnx: unknown key\(s\) prefer_nchw"):
        study.validate(config)


def test_every_backend_module_declares_a_light_spec():
    """The Snakefile imports the specs and hashes each stage's code on every run: no module may import torch at
    import time, and the hashes import nothing."""
    import subprocess
    import sys
    code = ("import sys; from fmtbench import study, triggers; [study.spec(f) for f in study.available_formats()]; "
            "[triggers.code_hash(s, f) for s in ('export', 'benchmark') for f in study.available_formats()]; "
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
        with pytest.raises(study.ConfigError) as error:
            study.check(config, SCHEMA)
        assert str(error.value) == message


def test_a_baseline_the_study_does_not_measure_is_refused():
    config = default_config()
    config["baseline"] = {"format": "onnx", "precision": "fp16"}
    config["formats"]["onnx"] = {"cpu": ["fp32"]}
    with pytest.raises(study.ConfigError, match="baseline: onnx fp16 is not measured by this study"):
        study.check(config, SCHEMA)


# --- generated configs: each is accepted, or refused with a message naming a key; never a traceback -----------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOP_KEYS = ["formats", "image_sizes", "batch_sizes", "loaders", "baseline", "measurement", "model", "data",
            "variants", "options", "cpu_threads", "host_label", "batch_sizes_by_device", "loader"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 600), st.floats(-1, 1e3, allow_nan=False),
                    st.text(max_size=8), st.sampled_from(["fp16", "fp32", "cpu", "cuda", "torch", "onnx", "real",
                                                          "dummy", "auto", "strict", "tf32"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(
                                                           ["cpu", "cuda", "fp16", "torch", "onnx", "format",
                                                            "precision", "processes", "weights", "x"]), inner,
                                                           max_size=3)), max_leaves=6)


def _named_keys(config: dict) -> set[str]:
    keys = set()

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                keys.add(str(key))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
    walk(config)
    return keys | set(TOP_KEYS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(TOP_KEYS + ["formts", "imagesizes", "extra"]), values, max_size=3),
       drop=st.lists(st.sampled_from(TOP_KEYS), max_size=2))
def test_generated_configs_are_accepted_or_refused_naming_a_key(changes, drop):
    config = default_config()
    for key in drop:
        config.pop(key, None)
    config.update(copy.deepcopy(changes))
    named = _named_keys(config)
    try:
        study.check(config, SCHEMA)
    except (study.ConfigError, WorkflowError) as error:
        text = str(error)[:600]  # the schema's message names the failing key before it dumps the config
        assert any(key in text for key in named), text
    except Exception as error:  # noqa: BLE001 - the property: nothing else escapes
        raise AssertionError(f"{type(error).__name__} escaped the config check: {error}") from error


def test_option_values_are_checked_naming_the_option_and_what_it_takes():
    for options, message in [
        ({"onnx": {"prefer_nhwc": "maybe"}}, "options.onnx.prefer_nhwc: 'maybe' is not one of 'auto', True, False"),
        ({"torch": {"fp32_math": "fast"}}, "options.torch.fp32_math: 'fast' is not one of 'strict', 'tf32'"),
        ({"onnx": {"opset": "twenty"}}, "options.onnx.opset: 'twenty' is a str, the option takes a int"),
    ]:
        config = default_config()
        config["options"] = options
        with pytest.raises(study.ConfigError) as error:
            study.check(config, SCHEMA)
        assert str(error.value).startswith(message), str(error.value)
    config = default_config()
    config["options"] = {"onnx": {"prefer_nhwc": "true", "opset": "21"}}  # as --config gives them: strings
    study.check(config, SCHEMA)


# --- numeric domains: any value the schema accepts runs, or it is refused before the first job naming its key ---

def _numeric_keys(schema: dict, kinds=("integer", "number")) -> list[tuple]:
    """The path of every number in the config schema (a list's first item standing for its items)."""
    found = []

    def walk(node, path):
        node = configcheck._resolve(node, schema)
        types = node.get("type", [])
        types = {types} if isinstance(types, str) else set(types)
        if types & set(kinds) and not (types - set(kinds)) & {"integer", "number"}:
            found.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, (*path, key))
        if isinstance(node.get("items"), dict):
            walk(node["items"], (*path, 0))
    walk(schema, ())
    return found


NUMERIC_KEYS = _numeric_keys(yaml.safe_load(open(SCHEMA)))
INTEGER_KEYS = _numeric_keys(yaml.safe_load(open(SCHEMA)), kinds=("integer",))
numbers = st.one_of(st.integers(-2**80, 2**80), st.integers(-3, 5000),
                    st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 5000).map(float),
                    st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63, 2**64, 2**70, 10**12, 0.5, 1e-300,
                                     1e300, float("inf"), float("-inf"), float("nan")]))


def _set(config: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {}) if isinstance(key, str) else config[key]
    config[path[-1]] = value


def _get(config: dict, path: tuple):
    for key in path:
        config = config[key]
    return config


def _runs(config: dict) -> None:
    """What the jobs do with the numbers, short of running them: seeds seed torch and numpy, sizes and batches name
    files and shape tensors, cores are planned, timing settings are built, and every duration is finite."""
    import math

    import numpy as np
    import torch

    from fmtbench import hardware
    from fmtbench.settings import Settings, for_device
    for _, value in configcheck.leaves(config):
        assert not isinstance(value, float) or math.isfinite(value)
    for seed in (config["model"]["seed"], config["data"]["seed"]):
        torch.manual_seed(seed)
        torch.Generator().manual_seed(seed * 1_000_003 + config["data"]["num_images"])  # images.generate's seeds
        np.random.seed(seed)
    assert config["data"]["num_images"] <= 10_000 and config["data"]["accuracy_images"] <= 256
    for job in study.jobs(config):
        for path in study.result_paths(config, job, "host"):
            assert paths.result_key(path)[1] in study.batch_sizes(config, job.device)
            assert paths.result_size(path) in job.sizes
        for size in job.sizes:
            assert isinstance(size, int) and paths.REFERENCE.format(size=size).endswith(f"/{size}.pt")
    cores = list(range(16))
    for cuda_rows in (False, True):
        plan = hardware.core_plan(cuda_rows, config["cpu_threads"], cores)
        assert plan["cpu"] and set(plan["cpu"]) <= set(cores)
    for device in ("cpu", "cuda"):
        section = config["measurement"][device]
        settings = Settings.from_json(for_device(config["measurement"], device))
        assert all(isinstance(section[key], int) for key in ("warmup_iters", "min_iters", "processes",
                                                             "max_processes"))
        assert settings.warmup_seconds + max(settings.min_seconds, settings.max_seconds) <= 2 * 3600
        assert settings.stall_timeout() < 24 * 3600  # finite: a hang is caught
    assert config["loader"]["workers"] <= 256 and config["loader"]["cuda_workers"] <= 256


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(NUMERIC_KEYS), value=numbers)
def test_any_number_the_schema_accepts_runs_or_is_refused_naming_its_key(path, value):
    config = default_config()
    _set(config, path, value)
    try:
        study.check(config, SCHEMA)
    except study.ConfigError as error:
        first = str(error).splitlines()[0]
        where = configcheck.key_path(path[:-1] if isinstance(path[-1], int) else path)
        assert first.startswith(f"config: {where}"), first
        assert len(first) < 160, first
        return
    _runs(config)
    assert _get(config, path) == value
    if path in INTEGER_KEYS:
        assert type(_get(config, path)) is int, "an integer where an integer is meant (2.0 taken as 2)"


def test_every_numeric_key_is_covered_and_has_a_finite_bound():
    schema = yaml.safe_load(open(SCHEMA))
    assert ("measurement", "cpu", "warmup_seconds") in NUMERIC_KEYS and ("batch_sizes", 0) in NUMERIC_KEYS
    for path in NUMERIC_KEYS:
        node = schema
        for key in path:
            node = configcheck._resolve(node, schema)
            node = node["items"] if isinstance(key, int) else node["properties"][key]
        node = configcheck._resolve(node, schema)
        if path[-1] not in ("noisy_iqr_ratio", "unstable_spread"):  # shares: any finite threshold runs
            assert "maximum" in node, path


@pytest.mark.parametrize("change, message", [
    (lambda c: c["measurement"]["cpu"].update(warmup_seconds=float("inf")),
     "config: measurement.cpu.warmup_seconds: inf is not a finite number"),
    (lambda c: c["measurement"]["cpu"].update(max_seconds=float("nan")),
     "config: measurement.cpu.max_seconds: nan is not a finite number"),
    (lambda c: c["model"].update(seed=2**70),
     "config: model.seed: 1180591620717411303424 is greater than the maximum of 4294967295"),
    (lambda c: c.update(data={"seed": 2**62}),
     "config: data.seed: 4611686018427387904 is greater than the maximum of 4294967295"),
    (lambda c: c.update(data={"num_images": 10**12}),
     "config: data.num_images: 1000000000000 is greater than the maximum of 10000"),
    (lambda c: c.update(batch_sizes=[2.5]), "config: batch_sizes[0]: 2.5 is not of type integer"),
])
def test_the_values_that_broke_jobs_are_refused_in_one_line_naming_the_key(change, message):
    config = default_config()
    change(config)
    with pytest.raises(study.ConfigError) as error:
        study.check(config, SCHEMA)
    assert str(error.value) == message


def test_integers_written_as_floats_are_the_integers_meant():
    config = default_config()
    config.update(batch_sizes=[2.0, 4], image_sizes=[32.0], cpu_threads=1.0)
    config["measurement"]["cpu"]["min_iters"] = 5.0
    study.check(config, SCHEMA)
    assert config["batch_sizes"] == [2, 4] and config["image_sizes"] == [32] and config["cpu_threads"] == 1
    assert all(type(value) is int for value in (*config["batch_sizes"], *config["image_sizes"], config["cpu_threads"],
                                                config["measurement"]["cpu"]["min_iters"]))
    assert study.result_paths(config, study.jobs(config)[0], "h")[0].endswith("-bs2.json")


def test_a_schema_error_is_one_line_naming_the_key_with_the_value_cut_short():
    config = default_config()
    config["formats"]["torch"]["cuda"] = ["x" * 5000]
    with pytest.raises(study.ConfigError) as error:
        study.check(config, SCHEMA)
    assert str(error.value) == f"config: formats.torch.cuda[0]: '{'x' * 40}…' is not one of fp16, fp32"
    config = default_config()
    del config["image_sizes"]
    with pytest.raises(study.ConfigError) as error:
        study.check(config, SCHEMA)
    assert str(error.value) == "config: 'image_sizes' is a required property"
    config = default_config()
    config.update(batch_sizes=[-4], image_sizes=[8])
    with pytest.raises(study.ConfigError) as error:
        study.check(config, SCHEMA)
    lines = str(error.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith("  also config: ")
    assert {lines[0][:len("config: batch_sizes[0]")], lines[1].strip()[5:][:len("config: image_sizes[0]")]} == {
        "config: batch_sizes[0]", "config: image_sizes[0]"}


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
    assert study.check(config, SCHEMA)["model"]["weights"] == "imagenet", "no file of that name is looked for"
    for weights, message in [
        ("ResNet50_Weights.IMAGENET1K_V2", "config: model.weights: 'ResNet50_Weights.IMAGENET1K_V2' is "
                                           "torchvision's name for another model's weights; accepted: imagenet, "),
        ("my-resnet.pt", f"config: model.weights: 'my-resnet.pt' is no file here ({tmp_path}/my-resnet.pt); "
                         "accepted: imagenet, "),
    ]:
        config = default_config()
        config["model"]["weights"] = weights
        with pytest.raises(study.ConfigError) as error:
            study.check(config, SCHEMA)
        assert str(error.value).startswith(message) and "\n" not in str(error.value), str(error.value)


@pytest.mark.parametrize("text, message", [
    ("host_label: a\nimage_sizes: [64]\nimage_sizes: [96]\n",
     "config.yaml:3: key 'image_sizes' is written twice in one mapping (also on line 2); the last one would win "
     "silently: remove one"),
    ("formats:\n  torch: {cpu: [fp32]}\n  onnx: {cpu: [fp32]}\n  torch: {cuda: [fp16]}\n",
     "config.yaml:4: key 'torch' is written twice in one mapping (also on line 2)"),
    ('{\n  "image_sizes": [64],\n  "image_sizes": [96]\n}\n', "config.yaml:3: key 'image_sizes' is written twice"),
    ("host_label: a\nmodel:\n\tweights: random\n",
     "config.yaml:3: key 'weights': a TAB in the indentation: YAML indents with spaces"),
    ("image_sizes: [64\nbatch_sizes: [2]\n", "config.yaml:2: key 'batch_sizes': not valid YAML (expected ',' or ']'"),
    ("[formats]\ntorch = 'cpu'\n", "config.yaml:2: not valid YAML (expected '<document start>'"),  # TOML
    ("- torch\n- onnx\n", "config.yaml:1: holds a list, not a mapping of config keys"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x9c", "config.yaml:1: not a text file (byte 0x9c is not UTF-8)"),
])
def test_a_config_file_with_a_slip_is_refused_in_one_line_naming_file_line_and_key(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(study.ConfigError) as error:
        configcheck.check_config_file(path)
    assert str(error.value).startswith(f"{tmp_path}/{message}") and "\n" not in str(error.value), str(error.value)


def test_the_shipped_config_files_pass_the_file_check():
    for path in (REPO / "config.yaml", REPO / "tests" / "data" / "tiny_config.yaml"):
        configcheck.check_config_file(path)


@settings(max_examples=60, deadline=None)
@given(config=st.dictionaries(st.from_regex(r"[a-z_]{1,10}", fullmatch=True), values, min_size=1, max_size=5),
       data=st.data())
def test_any_key_written_twice_is_named_with_its_line(tmp_path_factory, config, data):
    """A YAML dump of a config with one of its top-level keys written again at the end: refused naming that key
    and the line of its second writing; the dump itself passes."""
    path = tmp_path_factory.mktemp("dup") / "config.yaml"
    text = yaml.safe_dump(config, sort_keys=False)
    path.write_text(text)
    configcheck.check_config_file(path)
    key = data.draw(st.sampled_from(sorted(config)))
    path.write_text(text + yaml.safe_dump({key: config[key]}))
    with pytest.raises(study.ConfigError) as error:
        configcheck.check_config_file(path)
    assert f"{path}:{len(text.splitlines()) + 1}: key {key!r} is written twice" in str(error.value)


def test_the_schemas_measurement_part_is_made_from_the_settings_records(tmp_path):
    """Each measurement setting is declared once (fmtbench/settings.py); the schema file holds what it makes
    (`python -m fmtbench.settings` writes it)."""
    from fmtbench import settings
    written = tmp_path / "config.schema.yaml"
    written.write_text(Path(SCHEMA).read_text())
    settings.write_config_schema(written)
    assert written.read_text() == Path(SCHEMA).read_text(), "run `python -m fmtbench.settings`"
    assert yaml.safe_load(written.read_text())["properties"]["measurement"] == settings.config_schema()
