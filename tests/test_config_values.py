"""The config's keys and values as a user writes them: generated configs and numbers are accepted or refused
naming a key, in one line; a config file's slips named with file, line and key."""
import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snakemake.exceptions import WorkflowError

from fmtbench import paths
from fmtbench.workflow import configcheck, plan

REPO = Path(__file__).resolve().parent.parent
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")


def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


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
        plan.check(config, SCHEMA)
    except (plan.ConfigError, WorkflowError) as error:
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
        with pytest.raises(plan.ConfigError) as error:
            plan.check(config, SCHEMA)
        assert str(error.value).startswith(message), str(error.value)
    config = default_config()
    config["options"] = {"onnx": {"prefer_nhwc": "true", "opset": "21"}}  # as --config gives them: strings
    plan.check(config, SCHEMA)


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

    from fmtbench.settings import Settings, for_device
    from fmtbench.workflow import hardware
    for _, value in configcheck.leaves(config):
        assert not isinstance(value, float) or math.isfinite(value)
    for seed in (config["model"]["seed"], config["data"]["seed"]):
        torch.manual_seed(seed)
        torch.Generator().manual_seed(seed * 1_000_003 + config["data"]["num_images"])  # images.generate's seeds
        np.random.seed(seed)
    assert config["data"]["num_images"] <= 10_000 and config["data"]["accuracy_images"] <= 256
    for job in plan.jobs(config):
        for path in plan.result_paths(config, job, "host"):
            assert paths.result_key(path)[1] in plan.batch_sizes(config, job.device)
            assert paths.result_size(path) in job.sizes
        for size in job.sizes:
            assert isinstance(size, int) and paths.REFERENCE.format(size=size).endswith(f"/{size}.pt")
    cores = list(range(16))
    for cuda_rows in (False, True):
        split = hardware.core_plan(cuda_rows, config["cpu_threads"], cores)
        assert split["cpu"] and set(split["cpu"]) <= set(cores)
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
        plan.check(config, SCHEMA)
    except plan.ConfigError as error:
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
    with pytest.raises(plan.ConfigError) as error:
        plan.check(config, SCHEMA)
    assert str(error.value) == message


def test_integers_written_as_floats_are_the_integers_meant():
    config = default_config()
    config.update(batch_sizes=[2.0, 4], image_sizes=[32.0], cpu_threads=1.0)
    config["measurement"]["cpu"]["min_iters"] = 5.0
    plan.check(config, SCHEMA)
    assert config["batch_sizes"] == [2, 4] and config["image_sizes"] == [32] and config["cpu_threads"] == 1
    assert all(type(value) is int for value in (*config["batch_sizes"], *config["image_sizes"], config["cpu_threads"],
                                                config["measurement"]["cpu"]["min_iters"]))
    assert plan.result_paths(config, plan.jobs(config)[0], "h")[0].endswith("-bs2.json")


def test_a_schema_error_is_one_line_naming_the_key_with_the_value_cut_short():
    config = default_config()
    config["formats"]["torch"]["cuda"] = ["x" * 5000]
    with pytest.raises(plan.ConfigError) as error:
        plan.check(config, SCHEMA)
    assert str(error.value) == f"config: formats.torch.cuda[0]: '{'x' * 40}…' is not one of fp16, fp32"
    config = default_config()
    del config["image_sizes"]
    with pytest.raises(plan.ConfigError) as error:
        plan.check(config, SCHEMA)
    assert str(error.value) == "config: 'image_sizes' is a required property"
    config = default_config()
    config.update(batch_sizes=[-4], image_sizes=[8])
    with pytest.raises(plan.ConfigError) as error:
        plan.check(config, SCHEMA)
    lines = str(error.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith("  also config: ")
    assert {lines[0][:len("config: batch_sizes[0]")], lines[1].strip()[5:][:len("config: image_sizes[0]")]} == {
        "config: batch_sizes[0]", "config: image_sizes[0]"}


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
    with pytest.raises(plan.ConfigError) as error:
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
    with pytest.raises(plan.ConfigError) as error:
        configcheck.check_config_file(path)
    assert f"{path}:{len(text.splitlines()) + 1}: key {key!r} is written twice" in str(error.value)
