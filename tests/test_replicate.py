"""The replicate check: two result sets of one study, row against row, class by class (issue 32's bar)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

from fixtures import write_results

from fmtbench.report import frame, replicate

REPO = Path(__file__).resolve().parent.parent
V3 = REPO / "tests" / "data" / "v3"


def _edit(paths, change):
    """`change(document)` on every measured row of `paths`; where it returns "drop" the file is removed."""
    for path in paths:
        document = json.loads(Path(path).read_text())
        if document["status"] == "ok":
            if change(document) == "drop":
                Path(path).unlink()
            else:
                Path(path).write_text(json.dumps(document))


def _sets(tmp_path, change_b=None, change_both=None):
    """Set a and set b: the fixture study (one machine), each edited as asked; the folders and their frames."""
    first = write_results(tmp_path / "a", hosts=("gpu-box",))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    second = [str(tmp_path / "b" / Path(path).relative_to(tmp_path / "a")) for path in first]
    for paths, change in ((first, change_both), (second, change_both), (second, change_b)):
        if change:
            _edit(paths, change)
    return [frame.load(sorted((tmp_path / name).rglob("*.json"))) for name in "ab"]


def _is(document, **config):
    return all(document["config"][key] == value for key, value in config.items())


def _compare(tmp_path, change_b=None, change_both=None, anchors=None):
    return replicate.compare(*_sets(tmp_path, change_b, change_both), anchors,
                             (str(tmp_path / "a"), str(tmp_path / "b")))


def _lines(comparison, cls, **keys):
    table = comparison.table[comparison.table["class"] == cls]
    for key, value in keys.items():
        table = table[table[key] == value]
    return table


def test_a_study_against_itself_passes_every_class_and_reports_the_host_bound_rows(tmp_path):
    comparison = _compare(tmp_path)
    table, verdicts = comparison.table, replicate.verdicts(comparison)
    judged = {"device_time", "gpu_bound", "end_to_end", "end_to_end_loader", "memory_cuda", "memory_cpu", "cpu"}
    assert {cls for cls, v in verdicts.items() if v["checked"]} == judged
    assert all(verdicts[cls]["met"] and verdicts[cls]["passed"] == verdicts[cls]["checked"] for cls in judged)
    host = table[table["class"] == replicate.REPORTED]
    # eager fp16 at 32² is host-bound (◊) in both: its wall figures shown with each run's range, not judged
    assert set(host["verdict"]) == {"reported"} and set(host["format"]) == {"torch"} and len(host) == 4
    assert host["b_low"].notna().all() and verdicts[replicate.REPORTED]["checked"] == 0
    assert comparison.flags == {"a": 2, "b": 2, "both": 2, "only one": 0, "known in both": 14, "same": 14}
    assert set(table["verdict"]) == {"pass", "reported"}


def test_a_gpu_bound_row_that_moved_more_than_its_interval_fails_a_host_bound_one_is_only_reported(tmp_path):
    def slower(document):
        if _is(document, device="cuda", loader="dummy"):
            document["timing"]["median"] *= 1.1
            document["memory"]["steady_mb"] += 20
    comparison = _compare(tmp_path, slower)
    gpu = _lines(comparison, "gpu_bound", figure="latency_ms")
    narrow = (gpu["a_high"] - gpu["a_low"]) / gpu["a"] < 0.1
    assert narrow.sum() >= 8 and (gpu[narrow]["verdict"] == "fail").all() and gpu["difference"].round(3).eq(0.1).all()
    assert (gpu[~narrow]["verdict"] == "pass").all(), "a row whose processes disagree by more states a wider interval"
    assert set(_lines(comparison, replicate.REPORTED)["verdict"]) == {"reported"}
    assert (_lines(comparison, "memory_cuda", loader="dummy")["verdict"] == "fail").all()
    verdicts = replicate.verdicts(comparison)
    assert verdicts["gpu_bound"]["met"] is False and verdicts["memory_cuda"]["met"] is False
    assert verdicts["device_time"]["met"] and verdicts["end_to_end"]["met"]


def test_the_device_time_of_a_call_is_checked_apart_from_its_wall_latency(tmp_path):
    def kernels_slower(document):
        if _is(document, device="cuda", loader="dummy"):
            for process in document["timing"]["processes"]:
                process["gpu_ms"] *= 1.05
    comparison = _compare(tmp_path, kernels_slower)
    device = _lines(comparison, "device_time")
    assert len(device) == 14 and (device["verdict"] == "fail").all() and device["difference"].round(3).eq(0.05).all()
    others = comparison.table[comparison.table["class"] != "device_time"]
    assert set(others["verdict"]) == {"pass", "reported"}, "the wall figures did not move"
    assert replicate.verdicts(comparison)["device_time"]["met"] is False


def test_a_row_host_bound_in_one_run_only_is_reported_and_counted(tmp_path):
    def host_bound(document):
        if _is(document, device="cuda", loader="dummy", format="onnx", precision="fp32", image_size=64):
            document["timing"]["host_bound"] = True
            document["timing"]["median"] *= 1.5
    comparison = _compare(tmp_path, host_bound)
    assert comparison.flags["only one"] == 2 and comparison.flags["b"] == 4 and comparison.flags["same"] == 12
    moved = _lines(comparison, replicate.REPORTED, format="onnx", image_size=64)
    assert len(moved) == 4 and set(moved["verdict"]) == {"reported"}
    assert set(comparison.table["verdict"]) == {"pass", "reported"}, "a host-bound row is not judged"


def test_end_to_end_judges_the_verdict_then_the_rate_or_the_share_of_capacity(tmp_path):
    def model_bound(throughput):  # the loader's capacity above the model's rate under load: the model sets it
        throughput["decode_capacity_fps"] = 2 * throughput["model_fps"]

    def both(document):  # both sets: the cuda rows model-bound
        if _is(document, device="cuda", loader="real"):
            model_bound(document["throughput"])

    def moved(document):
        if _is(document, device="cuda", loader="real", precision="fp32"):
            document["throughput"]["end_to_end_fps"] *= 1.03 if document["config"]["batch_size"] == 4 else 1.08
        if _is(document, device="cpu", loader="real", batch_size=8):
            document["throughput"]["end_to_end_fps"] *= 1.06  # e2e / capacity 6 % higher
        if _is(document, device="cpu", loader="real", batch_size=4, format="torch"):
            model_bound(document["throughput"])
    comparison = _compare(tmp_path, moved, both)
    model = _lines(comparison, "end_to_end_model", precision="fp32")
    assert model.groupby("batch_size")["verdict"].agg(set).to_dict() == {4: {"pass"}, 8: {"fail"}}
    assert (_lines(comparison, "end_to_end_loader", batch_size=8)["verdict"] == "fail").all()
    flipped = _lines(comparison, "end_to_end", device="cpu", batch_size=4, format="torch")
    assert dict(zip(flipped["figure"], flipped["verdict"], strict=True)) == {"e2e_bound": "fail", "e2e_fps": "reported"}
    verdicts = replicate.verdicts(comparison)
    assert verdicts["end_to_end"]["checked"] == 22 and verdicts["end_to_end"]["passed"] == 20


def test_memory_is_judged_by_its_class(tmp_path):
    def gpu_decode(document):  # both sets: cuda fp32 real rows decode on the GPU; every figure ~1 GB
        if _is(document, device="cuda", loader="real", precision="fp32"):
            document["config"]["loader"] = "real_gpu_decode"
        document["memory"]["steady_mb"] = 1000.0

    def grown(document):
        document["memory"]["steady_mb"] = 1040.0 if document["config"]["batch_size"] == 4 else 1060.0
    comparison = _compare(tmp_path, grown, gpu_decode)
    for cls, verdicts in (("memory_gpu_decode", {4: "pass", 8: "fail"}), ("memory_cpu", {4: "pass", 8: "fail"}),
                          ("memory_cuda", {4: "fail", 8: "fail"})):
        lines = _lines(comparison, cls)
        assert not lines.empty and all(lines[lines["batch_size"] == batch]["verdict"].eq(verdict).all()
                                       for batch, verdict in verdicts.items()), cls


def test_cpu_rows_are_checked_both_ways(tmp_path):
    def wide_in_a(document):  # set a's processes 100 and 110 ms, median 105: b's 110 is in a's range, not a in b's
        if _is(document, device="cpu", loader="dummy"):
            process = document["timing"]["processes"][0]
            document["timing"]["processes"] = [process, json.loads(json.dumps(process))]
            process["summary"]["median"], document["timing"]["processes"][1]["summary"]["median"] = 100.0, 110.0
            document["timing"]["median"] = 105.0

    def one_process(document):
        if _is(document, device="cpu", loader="dummy"):
            document["timing"]["processes"] = document["timing"]["processes"][:1]
            document["timing"]["median"] = document["timing"]["processes"][0]["summary"]["median"] = 110.0
    first = tmp_path / "first"
    _sets(first, change_both=wide_in_a)
    _edit(sorted((first / "b").rglob("*.json")), one_process)
    a, b = (frame.load(sorted((first / name).rglob("*.json"))) for name in "ab")
    cpu = _lines(replicate.compare(a, b), "cpu")
    assert len(cpu) == 8 and (cpu["verdict"] == "fail").all()
    assert (cpu["a_low"] <= cpu["b"]).all() and (cpu["b"] <= cpu["a_high"]).all(), "one way alone would pass"
    assert (_lines(replicate.compare(a, a), "cpu")["verdict"] == "pass").all()


def test_rows_missing_or_failed_in_one_set_are_said_per_class(tmp_path):
    def lose(document):
        if _is(document, device="cuda", loader="dummy", format="onnx", precision="fp32", batch_size=4):
            return "drop"
        if _is(document, device="cpu", loader="dummy", format="torch", batch_size=8):
            document.update(status="failed", reason="killed", timing=None, throughput=None, memory=None)
    verdicts = replicate.verdicts(_compare(tmp_path, lose))

    def rows(cls, why):
        return sum(count for text, count in verdicts[cls]["skipped"].items() if why in text)
    assert all(rows(cls, "set a only") == 2 for cls in ("device_time", "gpu_bound", "memory_cuda"))
    assert rows("cpu", "failed in set b") == 2 and rows("memory_cpu", "failed in set b") == 2
    assert verdicts["cpu"]["checked"] == 6 and rows("end_to_end", " only") + rows("end_to_end", "failed in") == 0


def test_an_older_schema_says_each_class_it_could_not_check(tmp_path):
    for name in "ab":
        shutil.copytree(V3, tmp_path / name)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(REPO / "tools" / "replicate.py"), str(tmp_path / "a"),
                           str(tmp_path / "b"), "--out", str(out)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    comparison = replicate.compare(*(frame.load(sorted((tmp_path / name).glob("*.json"))) for name in "ab"))
    verdicts = replicate.verdicts(comparison)
    for cls in ("device_time", "gpu_bound", "memory_cuda", "memory_gpu_decode", "memory_cpu"):
        assert verdicts[cls]["checked"] == 0 and verdicts[cls]["skipped"], cls
        assert any("schema 3" in why for why in verdicts[cls]["skipped"]), cls
    summary = replicate.summary(comparison)
    cannot = [line for line in summary if "could not check" in line]
    assert summary[:len(cannot)] == cannot and len(cannot) >= 5, "what could not be checked comes first"
    assert verdicts["end_to_end"]["checked"] > 0, "the verdict comes from the rates schema 3 recorded too"
    assert (out / "replicate.csv").exists() and all(line in (out / "replicate.md").read_text() for line in cannot)


def test_schema_4_onnx_runtime_rows_have_no_device_time(tmp_path):
    def schema_4(document):
        document["schema_version"] = 4
        if _is(document, format="onnx", device="cuda", loader="dummy"):
            for process in document["timing"]["processes"]:
                process["gpu_ms"] = None
    verdicts = replicate.verdicts(_compare(tmp_path, schema_4))
    assert verdicts["device_time"]["checked"] == 8
    assert [rows for why, rows in verdicts["device_time"]["skipped"].items() if "ONNX Runtime" in why] == [6]


def test_the_plain_loop_judges_the_gpu_bound_rows_and_reports_the_host_bound_ones(tmp_path):
    a, b = _sets(tmp_path)
    rows = a[(a["device"] == "cuda") & (a["loader"] == "dummy") & (a["status"] == "ok")]
    folders = ["/elsewhere/run-a/artifacts/results", str(tmp_path / "b")]  # a's copied since, b's where it ran
    anchors = [{"row": "anchor-x", "kind": "anchor", "error": "could not load"}]
    for row in rows.itertuples():
        slow = row.format == "onnx" and row.precision == "fp32"  # the harness 10 % slower than the loop
        loop = {"latency_ms": row.latency_ms / (1.1 if slow else 1.0), "throughput_fps": row.throughput_fps}
        anchors.append({"kind": "anchor", "format": row.format, "precision": row.precision, "size": row.image_size,
                        "batch": row.batch_size, "loops": [loop, loop, loop],
                        "rows": [{"set": folder, "latency_ms": row.latency_ms, "throughput_fps": row.throughput_fps,
                                  "host_bound": row.host_bound} for folder in folders]})
    comparison = replicate.compare(a, b, anchors, (str(tmp_path / "a"), str(tmp_path / "b")))
    loop = _lines(comparison, "plain_loop")
    host = loop[(loop["format"] == "torch") & (loop["precision"] == "fp16") & (loop["image_size"] == 32)]
    assert len(host) == 8 and set(host["verdict"]) == {"reported"}
    slow = loop[(loop["format"] == "onnx") & (loop["precision"] == "fp32")]
    assert set(slow[slow["figure"] == "latency_ms"]["verdict"]) == {"fail"}
    assert set(slow[slow["figure"] == "throughput_fps"]["verdict"]) == {"pass"}
    judged = loop[(loop["verdict"] != "reported") & ~loop.index.isin(slow.index)]
    assert len(judged) == 32 and set(judged["verdict"]) == {"pass"}
    assert {note.split(" against")[0] for note in loop["note"]} == {"set a", "set b"}
    assert (loop.groupby(["format", "precision", "image_size", "batch_size", "figure"])["note"].nunique() == 2).all()
    verdicts = replicate.verdicts(comparison)
    assert verdicts["plain_loop"]["met"] is False and list(verdicts["plain_loop"]["skipped"].values()) == [1]
