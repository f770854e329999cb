"""The findings and the answer: like with like, ties, cards, host-bound rows by their device time."""
import re

from fixtures import ok_rows, write_results

from fmtbench.report import answer, cells, findings, frame
from fmtbench.report.labels import fps_text


def test_findings_compare_like_with_like_and_name_strict_fp32(tmp_path):
    results = frame.load(write_results(tmp_path))
    lines = findings.all_findings(results, "torch", random_weights=True)
    fastest = [line for line in lines if line.startswith("Fastest")]
    assert any(line.startswith("Fastest (model, back to back throughput) on cuda (`gpu-box`), dummy loader")
               for line in fastest)
    assert any(line.startswith("Fastest (end-to-end throughput) on cuda (`gpu-box`), real loader")
               for line in fastest)
    assert any("fp16 over strict fp32 (TF32 off), torch on cuda (`gpu-box`)" in line for line in lines)
    assert not any("fp16 over fp32, torch on cuda" in line for line in lines)
    memory = [line for line in lines if line.startswith("Lowest memory")]
    assert {re.search(r", (\w+) loader", line).group(1) for line in memory} == {"real", "dummy"}
    assert any(line.startswith("Accuracy: all 60 rows checked are within") for line in lines)
    assert any("torch on cuda (`gpu-box`): no pair to compare; left out: 32² bs 4, 32² bs 8, 64² bs 4, 64² bs 8 (‡ "
               "their processes disagree)" in line for line in lines), "fp16 gains are not taken from rows whose "\
        "processes disagree"
    assert not any("Top-1" in line for line in lines), "random weights: top-1 agreement is not a finding"
    assert any("Top-1 agreement below 99 %: onnx fp16" in line
               for line in findings.all_findings(results, "torch", random_weights=False))


def test_accuracy_outlier_is_reported_with_its_relative_error(tmp_path):
    results = frame.load(write_results(tmp_path))
    results.loc[(results["format"] == "onnx") & (results["precision"] == "fp16"), "within_limit"] = False
    results.loc[(results["format"] == "onnx") & (results["precision"] == "fp16"), "max_rel_error"] = 0.05
    lines = findings.all_findings(results, "torch")
    assert any(line.startswith("Accuracy outlier: onnx fp16 on cuda") and "0.05 above the limit" in line
               for line in lines)


def test_rows_whose_process_ranges_overlap_are_a_tie_not_a_ranking(tmp_path):
    ok = ok_rows(tmp_path)
    model = ok[(ok["loader"] == "dummy") & (ok["device"] == "cuda") & (ok["image_size"] == 32)].copy()
    model["host_bound"] = False  # a host-bound row is not ranked at all (its own test)
    onnx = model[(model["format"] == "onnx") & (model["precision"] == "fp16")]
    best = onnx["throughput_fps"].max()
    torch_fp16 = (model["format"] == "torch") & (model["precision"] == "fp16")
    model.loc[torch_fp16, "throughput_max_fps"] = best * 1.01  # its fastest process reaches the best row
    assert findings.fastest_model(model).startswith("a tie (their processes' ranges overlap): onnx fp16")
    model.loc[torch_fp16, "throughput_max_fps"] = best * 0.9
    assert not findings.fastest_model(model).startswith("a tie")


def test_the_fastest_cpu_row_is_named_with_its_tables_range(tmp_path):
    """A CPU row's back-to-back rate is the host's at the time: the finding quotes the range its table cell shows."""
    ok = ok_rows(tmp_path)
    model = ok[(ok["loader"] == "dummy") & (ok["device"] == "cpu") & (ok["image_size"] == 32)].copy()
    model["processes"] = 2
    model["throughput_min_fps"], model["throughput_max_fps"] = model["throughput_fps"] * 0.9, model["throughput_fps"]
    best = model.loc[model["throughput_fps"].idxmax()]
    text = findings.fastest_model(model)
    low, high = fps_text(best["throughput_min_fps"]), fps_text(best["throughput_max_fps"])
    assert f"at batch {int(best['batch_size'])}, {low}–{high} img/s" in text
    assert cells.throughput_text(best) == f"{best['throughput_min_fps']:.1f}–{best['throughput_max_fps']:.1f}"
    model["processes"] = 1   # one process: its figure
    assert f", {fps_text(best['throughput_fps'])} img/s" in findings.fastest_model(model)


def test_a_ranking_of_rows_from_different_cards_says_so(tmp_path):
    ok = ok_rows(tmp_path)
    model = ok[(ok["loader"] == "dummy") & (ok["device"] == "cuda") & (ok["image_size"] == 32)].copy()
    model["host_bound"] = False  # a host-bound row is not ranked at all (its own test)
    model["gpu_uuid"] = "GPU-a"
    assert "different cards" not in findings.fastest_model(model)
    model.loc[model["format"] == "torch", "gpu_uuid"] = "GPU-b"
    assert findings.fastest_model(model).endswith("(measured on different cards, not calibrated against each other)")


def test_the_answer_takes_the_tables_figures_and_names_the_configurations_it_left_out(tmp_path):
    """Issue 32's seed complaint: on a CPU study "In short" said onnx fp32 is 2.17× torch fp32 (one pair) while the
    tables said 3.3–4.75×, the other pairs left out for § without a word."""
    ok = ok_rows(tmp_path)
    ok = ok[ok["host"] == "cpu-box"].copy()
    onnx = ok[(ok["format"] == "onnx") & (ok["loader"] == "dummy")].sort_values(["image_size", "batch_size"])
    ok.loc[onnx.index, "speedup"] = [3.3, 4.0, 4.75, 2.17]
    ok.loc[onnx.index[:3], "contended"] = True
    line = answer.answer(ok, "torch", "fp32")[0]
    assert ("deploy with onnx fp32: a median 2.17× the throughput of torch fp32 (the baseline), in its one "
            "configuration without a mark (64² bs 8); the model alone, same batch and image size, from back-to-back "
            "throughput; left out: onnx fp32 32² bs 4, 32² bs 8, 64² bs 4 (§ measured beside other work; "
            "3.30×–4.75× in the tables).") in line, line
    ok.loc[onnx.index, "contended"] = True
    line = answer.answer(ok, "torch", "fp32")[0]
    assert line.startswith("On this machine, cpu: no configuration to compare with torch fp32 without a mark; left "
                           "out: onnx fp32 32² bs 4, 32² bs 8, 64² bs 4, 64² bs 8 (§ measured beside other work; "
                           "2.17×–4.75× in the tables)"), line


def test_findings_rank_no_host_bound_row_and_compare_one_by_its_device_time(tmp_path):
    ok = ok_rows(tmp_path)
    gpu = ok[ok["host"] == "gpu-box"].copy()
    fastest = " ".join(findings.fastest(gpu))
    assert ("32²: onnx fp16 at batch 4, 933 img/s (not ranked: torch fp16 bs 4, torch fp16 bs 8 — ◊ host-bound, their "
            "wall rate is this host's)") in fastest
    gpu["unstable"] = False  # the ◊ rows' processes agree: the fp16 gain over them is from their device time
    onnx_fp32 = (gpu["format"] == "onnx") & (gpu["precision"] == "fp32") & (gpu["image_size"] == 64)
    gpu.loc[onnx_fp32, "contended"] = True
    lines = findings.fp16_gain(gpu)
    torch_line = next(line for line in lines if ", torch on cuda" in line)
    assert "device time for the 2 with a ◊ row (32² bs 4, 32² bs 8)" in torch_line, torch_line
    pairs = gpu[(gpu["format"] == "torch") & (gpu["loader"] == "dummy") & (gpu["device"] == "cuda")]
    strict = pairs[(pairs["precision"] == "fp32") & (pairs["image_size"] == 32)].sort_values("batch_size")
    half = pairs[(pairs["precision"] == "fp16") & (pairs["image_size"] == 32)].sort_values("batch_size")
    by_device = strict["gpu_ms"].to_numpy() / half["gpu_ms"].to_numpy()
    assert f"×{by_device.max():.2f}" in torch_line, torch_line
    onnx_line = next(line for line in lines if ", onnx on cuda" in line)
    assert "left out: 64² bs 4 (§ measured beside other work)" in onnx_line, onnx_line
