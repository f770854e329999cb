"""The row record: its JSON, its schema, and the files earlier versions wrote."""
import json
from pathlib import Path

import jsonschema
import pytest

from fmtbench import env, results

V3 = sorted((Path(__file__).resolve().parent / "data" / "v3").glob("*.json"))


def _config(**overrides):
    return results.Config(**{"format": "onnx", "precision": "fp16", "device": "cuda", "loader": "real",
                             "image_size": 224, "batch_size": 64, "host": "host", **overrides})


def test_a_row_without_a_measurement_validates_and_says_why():
    row = results.failure(_config(), "unavailable", "no CUDA device", environment=env.capture("cuda"))
    document = row.to_json()
    results.validate(document)
    assert document["status"] == "unavailable" and document["timing"] is None and "weights" not in document
    with pytest.raises(ValueError):
        results.failure(_config(), "skipped", "why", environment={})


@pytest.mark.parametrize("path", V3, ids=[path.stem for path in V3])
def test_rows_the_previous_version_wrote_read_back_field_for_field(path):
    """Files of schema version 3 (a CPU and a CUDA study of the code before the typed rows; real loaders, GPU
    decode, torch.compile's shared memory, five processes) read into the record and write back the same JSON,
    but for the settings, which now carry the thresholds the row was judged with (absent in version 3)."""
    document = json.loads(path.read_text())
    results.validate(document)  # against the kept version-3 schema
    row = results.Row.from_json(document)
    again = json.loads(json.dumps(row.to_json()))
    settings = again.pop("measurement")
    if document.pop("measurement") is not None:
        assert row.measurement.unstable_spread is None and settings["harness"] is None
    assert again == document
    with pytest.raises(jsonschema.ValidationError):  # not a row of this version
        jsonschema.validate(row.to_json(), results.schema())


def test_the_schema_is_derived_from_the_record_and_allows_no_other_key():
    schema = results.schema()
    assert schema["properties"]["schema_version"]["const"] == results.SCHEMA_VERSION
    assert set(schema["properties"]) == {f for f in results.Row.__dataclass_fields__}
    assert "weights" not in schema["required"] and "timing" in schema["required"]
    processes = schema["properties"]["processes"]["items"]
    assert processes["additionalProperties"] is False and "memory" in processes["required"]
    assert results.readable_versions() == [3, 4, 5, 6, 7, results.SCHEMA_VERSION]


def test_the_published_schema_file_is_the_derived_one():
    """schemas/result.schema.json is for readers; the code derives the schema (`python -m fmtbench.results`)."""
    assert json.loads(results.SCHEMA_FILE.read_text()) == json.loads(json.dumps(results.schema()))


def test_a_row_of_an_older_schema_keeps_its_rates_though_a_key_was_dropped_since():
    """Schema 5 recorded a real-loader row's verdict in its rates (bound, bound_share, e2e_over_capacity); schema 6
    dropped them. Read back, the rates are still the pipeline's (with the decode capacity), not the model-alone
    record that merely has fewer fields."""
    from fmtbench import row_parts
    from fmtbench.typedjson import _from
    value = {"model_fps": 200.0, "basis": "under_load", "latency_fps": None, "end_to_end_fps": 90.0,
             "end_to_end_spread": 0.0, "decode_capacity_fps": 100.0, "capacity_spread": 0.0, "expected_fps": 100.0,
             "pipeline_efficiency": 0.9, "stalled": False, "above_model_fps": False, "data_wait_ms": None,
             "producer": "p", "distinct_images_per_batch": 4, "bound": "loader", "bound_share": 0.9,
             "e2e_over_capacity": 0.9}
    rates = _from(row_parts.ModelRates | row_parts.PipelineRates, value)
    assert isinstance(rates, row_parts.PipelineRates) and rates.decode_capacity_fps == 100.0
