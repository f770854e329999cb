"""The replicate check: two result sets of one study, row against row."""
import json

from fixtures import write_results

from fmtbench.report import frame, replicate


def _sets(tmp_path, change=None):
    first = write_results(tmp_path / "a")
    second = write_results(tmp_path / "b")
    if change:
        for path in second:
            document = json.loads(open(path).read())
            if document["status"] == "ok":
                change(document)
                open(path, "w").write(json.dumps(document))
    return frame.load(first), frame.load(second)


def test_a_study_against_itself_passes_every_bar(tmp_path):
    table = replicate.compare(*_sets(tmp_path))
    assert not table.empty and table["pass"].all()
    assert set(table["class"]) == {"gpu_bound", "host_bound", "memory", "end_to_end", "cpu", "device_time"}
    assert all(line.endswith("met") and "NOT" not in line for line in replicate.summary(table))


def test_a_gpu_bound_row_that_moved_more_than_its_interval_fails(tmp_path):
    def slower(document):
        if document["config"]["device"] == "cuda" and document["config"]["loader"] == "dummy":
            document["timing"]["median"] *= 1.1
            document["memory"]["steady_mb"] += 20
    table = replicate.compare(*_sets(tmp_path, slower))
    gpu = table[(table["class"] == "gpu_bound") & (table["figure"] == "latency")]
    narrow = (gpu["interval_high"] - gpu["interval_low"]) / gpu["a"] < 0.1
    assert narrow.sum() >= 8 and not gpu[narrow]["pass"].any() and gpu["difference"].round(3).eq(0.1).all()
    assert gpu[~narrow]["pass"].all(), "a row whose processes disagree by more states a wider interval"
    host = table[table["class"] == "host_bound"]
    assert host["pass"].all(), "7.0 × 1.1 is still inside a host-bound row's range over its processes (5–7 ms)"
    memory = table[(table["class"] == "memory") & (table["loader"] == "dummy") & (table["device"] == "cuda")]
    assert not memory["pass"].any()
    assert any("gpu_bound" in line and "NOT met" in line for line in replicate.summary(table))


def test_the_device_time_of_a_call_is_checked_apart_from_its_host_bound_latency(tmp_path):
    def kernels_slower(document):
        if document["config"]["device"] == "cuda" and document["config"]["loader"] == "dummy":
            for process in document["timing"]["processes"]:
                if process.get("gpu_ms"):
                    process["gpu_ms"] *= 1.05
    table = replicate.compare(*_sets(tmp_path, kernels_slower))
    device = table[table["class"] == "device_time"]
    assert not device.empty and not device["pass"].any() and device["difference"].round(3).eq(0.05).all()
    assert table[table["class"] != "device_time"]["pass"].all(), "the latency figures did not move"
    assert any(line.startswith("device_time") and "NOT met" in line for line in replicate.summary(table))
