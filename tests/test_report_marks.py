"""The marks a row carries and the cells that show them: unstable, contended, host-bound, the device time, the
end-to-end verdict, memory."""
import re
from dataclasses import replace

import fixtures
import pandas as pd
from fixtures import BASELINE, cuda_model, ok_rows, render_report, write_results

from fmtbench.atomic import write_json
from fmtbench.report import cells, findings, frame, legend, marks, method
from fmtbench.scope import Scope


def test_a_row_whose_processes_disagree_is_marked_and_counted(tmp_path):
    """Eager fp16 measured 1.79 ms in one process and 2.59 in another on the H100: a reader sees it now."""
    text = render_report(tmp_path).read_text()
    gpu = text.split("## Results on `gpu-box`")[1].split("### 64×64")[1]
    row = next(line for line in gpu.splitlines() if re.match(r"\| torch +\| cuda +\| fp16 +\| 4 ", line))
    assert "‡" in row and "39.6% (3)" in row  # (28.0 - 20.0) / 20.2
    assert re.search(r"\d+ of \d+ measured configurations whose per-process medians spread by more than 5%", text)


def test_speedup_is_against_the_same_shape_loader_and_device_and_positive(tmp_path):
    results = frame.with_speedup(frame.load(write_results(tmp_path)), "torch", "fp32")
    ok = results[results["status"] == "ok"]
    assert (ok["speedup"].dropna() > 0).all()
    baseline_rows = ok[(ok["format"] == "torch") & (ok["precision"] == "fp32") & (ok["loader"] == "dummy")]
    assert (baseline_rows["speedup"] == 1.0).all()
    onnx = ok[(ok["format"] == "onnx") & (ok["precision"] == "fp32")]
    assert onnx["speedup"].dropna().round(6).eq(round(10.0 / 8.0, 6)).all()
    real = ok[ok["loader"] == "real"]
    assert real["speedup"].isna().all(), "real-loader rows have an end-to-end figure, not a model speedup"


def test_rows_timed_beside_other_work_are_marked_and_counted(tmp_path):
    results = frame.load(write_results(tmp_path))
    assert results["contended"].isna().all(), "results written without the field read as not known"
    busy = (results["format"] == "onnx") & (results["device"] == "cpu") & (results["status"] == "ok")
    results.loc[busy, "contended"] = True
    results.loc[busy, "others_cpu_share_max"] = 0.48
    lines = findings.all_findings(results, "torch")
    ok = int((results["status"] == "ok").sum())
    assert (f"{int(busy.sum())} of {ok} configurations measured while other processes used the machine (marked §; "
            "other processes took up to 48% of their cores") in " ".join(lines)
    marked = results[busy].iloc[0]
    assert cells.row_marks(marked).endswith("§") and "§" not in cells.row_marks(results[~busy].iloc[0])


def test_a_row_whose_accuracy_check_failed_says_so(tmp_path):
    results = frame.load(write_results(tmp_path))
    broken = (results["format"] == "torch") & (results["status"] == "ok")
    results.loc[broken, "accuracy_error"] = "RuntimeError: shape mismatch"
    results.loc[broken, "rel_error_limit"] = None
    lines = findings.all_findings(results, "torch")
    assert any(line.startswith("Accuracy not checked: torch") and "shape mismatch" in line for line in lines)
    assert cells.rel_error_text(results[broken].iloc[0]) == "check failed"


def test_a_memory_figure_no_process_measured_alone_is_kept_out_of_tables_findings_and_plots(tmp_path):
    """torch.compile's dummy rows at 224² batch 64 read 44 MB on the H100 (every process ran them after another
    loader at that batch, whose recorded graph's pool was in their baseline): the report called that the lowest
    memory of all formats. Such a figure is a lower bound, in the CSV's memory_shared_mb only."""
    from fmtbench.atomic import read_json, write_json
    paths = write_results(tmp_path)
    shared = next(p for p in paths if "gpu-box/torch/cuda-fp16/64/dummy-bs8.json" in str(p))
    record = read_json(shared)
    record["memory"]["shared"] = "the CUDA graph ... is kept"
    record["memory"]["steady_mb"] = 1.0
    write_json(shared, record)
    results = frame.load(paths)
    row = results[(results["format"] == "torch") & (results["precision"] == "fp16") & (results["loader"] == "dummy")
                  & (results["batch_size"] == 8) & (results["host"] == "gpu-box")
                  & (results["image_size"] == 64)].iloc[0]
    assert pd.isna(row["memory_mb"]) and row["memory_shared_mb"] == 1.0
    assert not any(line.endswith(" 1 MB.") for line in findings.lowest_memory(results[results["status"] == "ok"]))


def test_a_speedup_carries_the_marks_of_its_baseline_too(tmp_path):
    """A newcomer's CPU study: torch 224² batch 32 took 2530.6 ms while another job ran (§ in its table row), and
    every speedup against it spiked, unmarked."""
    ok = ok_rows(tmp_path)
    where = (ok["host"] == "gpu-box") & (ok["device"] == "cuda") & (ok["image_size"] == 64) & (ok["batch_size"] == 4)
    ok.loc[where & (ok["format"] == "torch") & (ok["precision"] == "fp32") & (ok["loader"] == "dummy"),
           "contended"] = True
    again = frame.with_speedup(ok.drop(columns=["speedup", "baseline_fps", "baseline_contended",
                                                "baseline_host_bound"]), "torch", "fp32")
    same = ((again["host"] == "gpu-box") & (again["device"] == "cuda") & (again["image_size"] == 64)
            & (again["batch_size"] == 4) & (again["loader"] == "dummy"))
    onnx = again[same & (again["format"] == "onnx") & (again["precision"] == "fp32")]
    assert cells.speedup_text(onnx.iloc[0]).endswith("× §"), "its baseline was timed beside other work"


def test_cuda_rows_show_their_device_time_and_a_host_bound_speedup_is_from_it(tmp_path):
    """Issue 32: the device time reproduces between runs (16 of 16 CUDA rows within 1.3 %), a host-bound row's wall
    figures do not: it is shown beside the wall latency, and a speedup with a ◊ row is taken from it."""
    ok = cuda_model(ok_rows(tmp_path))
    model, _ = marks.split(ok)
    table = cells.table(model, Scope.MODEL_ALONE)
    torch_fp16 = (ok["format"] == "torch") & (ok["precision"] == "fp16")
    assert table["device time (ms)"].tolist() == [cells.ms(v) for v in ok["gpu_ms"]]
    row = ok[torch_fp16].iloc[0]
    baseline = ok[(ok["format"] == "torch") & (ok["precision"] == "fp32")].iloc[0]
    assert row["host_bound"] and row["speedup_basis"] == "device time"
    assert row["speedup"] == baseline["gpu_ms"] / row["gpu_ms"]
    assert cells.speedup_text(row) == f"{row['speedup']:.2f}× dev ◊"
    assert (ok[~torch_fp16]["speedup_basis"] == "throughput").all()
    # ONNX Runtime with its own CUDA graphs runs on a stream of its own: no device time, and the row says why
    graphs = ok[ok["format"] == "onnx"].iloc[0].copy()
    graphs["gpu_ms"] = None
    graphs["compute_stream"] = "ONNX Runtime's own (CUDA graphs): its device time is not measured"
    assert cells.device_ms_text(graphs) == "– °"
    text = legend.legend_texts(ok, BASELINE)[Scope.MODEL_ALONE]
    assert "*device time* (CUDA rows)" in text and "`°`" in text and "marked `dev`" in text


def test_a_device_time_with_a_sample_no_spin_hid_is_shown_as_an_upper_bound(tmp_path):
    """The spin check keeps a sample whose launches no spin hid (it holds host time): the row's device time is then
    an upper bound, shown `≤` and said in the legend; rows from before the check (no counts) read as before."""
    cuda = fixtures.row("gpu-box", "torch", "fp16", "cuda", "dummy", 32, 4)
    first, *others = cuda.timing.processes
    counted = replace(cuda, timing=replace(cuda.timing, processes=[replace(first, gpu_retaken=3, gpu_unhidden=1)] + [
        replace(process, gpu_retaken=1, gpu_unhidden=0) for process in others]))
    quiet = fixtures.row("gpu-box", "torch", "fp32", "cuda", "dummy", 32, 4)
    paths = []
    for name, made in (("counted", counted), ("quiet", quiet)):
        paths.append(tmp_path / f"{name}.json")
        write_json(paths[-1], replace(made, weights=fixtures.WEIGHTS).to_json())
    ok = frame.load([str(path) for path in paths])
    row = ok[ok["precision"] == "fp16"].iloc[0]
    assert (row["gpu_retaken"], row["gpu_unhidden"]) == (3 + len(others), 1), "summed over the row's processes"
    assert cells.device_ms_text(row) == "≤ " + cells.ms(row["gpu_ms"])
    before = ok[ok["precision"] == "fp32"].iloc[0]
    assert pd.isna(before["gpu_unhidden"]) and cells.device_ms_text(before) == cells.ms(before["gpu_ms"])
    assert "`≤`: an upper bound" in legend.legend_texts(ok, BASELINE)[Scope.MODEL_ALONE]
    assert "`≤`" not in legend.legend_texts(ok[ok["precision"] == "fp32"], BASELINE)[Scope.MODEL_ALONE]


def test_a_host_bound_rows_wall_figures_are_its_processes_range(tmp_path):
    ok = cuda_model(ok_rows(tmp_path))
    row = ok[(ok["format"] == "torch") & (ok["precision"] == "fp16")].iloc[0]
    assert cells.latency_text(row) == f"{cells.ms(row['process_min_ms'])}–{cells.ms(row['process_max_ms'])} ‡◊"
    assert cells.throughput_text(row) == f"{row['throughput_min_fps']:.1f}–{row['throughput_max_fps']:.1f}"
    steady = ok[(ok["format"] == "onnx")].iloc[0]
    assert cells.latency_text(steady) == cells.ms(steady["latency_ms"])
    text = legend.legend_texts(ok, BASELINE)[Scope.MODEL_ALONE]
    assert ("so its latency and throughput are this host's launch rate, shown as the range over its processes "
            "(the low end what the format does on a quiet host) and ranked by no finding") in text


def test_a_cpu_rows_wall_figures_are_its_processes_range(tmp_path):
    """The host's CPU speed moved 30-43 % between two runs on the lent H100 and up to 2x within one process
    (docs/results/nvidia-h100-80gb-hbm3/replicate-2026-12-07/): a CPU row's wall figures are the host's at the time."""
    results = frame.with_speedup(frame.load(write_results(tmp_path)), "torch", "fp32")
    ok = results[(results["status"] == "ok") & (results["device"] == "cpu") & (results["loader"] == "dummy")].copy()
    ok["processes"] = 2
    ok["process_min_ms"], ok["process_max_ms"] = ok["latency_ms"] * 0.9, ok["latency_ms"] * 1.2
    ok["throughput_min_fps"], ok["throughput_max_fps"] = ok["throughput_fps"] * 0.8, ok["throughput_fps"] * 1.1
    row = ok.iloc[0]
    assert cells.latency_text(row) == f"{cells.ms(row['process_min_ms'])}–{cells.ms(row['process_max_ms'])}"
    assert cells.throughput_text(row) == f"{row['throughput_min_fps']:.1f}–{row['throughput_max_fps']:.1f}"
    assert "the range over its processes: the host's CPU speed moves" in legend.legend_texts(ok, BASELINE)[
        Scope.MODEL_ALONE]
    one = row.copy()
    one["processes"] = 1   # one process: its median, with its interval under *spread*
    assert cells.latency_text(one) == cells.ms(one["latency_ms"])
    assert cells.throughput_text(one) == f"{one['throughput_fps']:.1f}"
    ok["processes"] = 1
    assert "CPU speed" not in legend.legend_texts(ok, BASELINE)[Scope.MODEL_ALONE]


def test_end_to_end_rows_give_their_verdict_and_the_capacity_is_a_table_of_the_hosts(tmp_path):
    ok = ok_rows(tmp_path)
    real = ok[(ok["host"] == "gpu-box") & (ok["loader"] == "real") & (ok["device"] == "cuda")].copy()
    assert cells.table(real, Scope.END_TO_END)["bound (e2e / capacity)"].eq("loader (97%)").all()
    real.loc[real.index[0], ["e2e_bound", "e2e_over_capacity"]] = ["model", 0.62]
    assert cells.table(real, Scope.END_TO_END)["bound (e2e / capacity)"].iloc[0] == "model (62%)"
    text = legend.legend_texts(ok, BASELINE)[Scope.END_TO_END]
    assert "*bound* = the slower stage: `loader` where that capacity is below the model's rate under load" in text
    from fmtbench.report import loaders
    lines = loaders.capacity_table(ok[ok["host"] == "gpu-box"])
    assert lines[0] == "### Decode capacity (the host's)"
    assert "this host's figure (its cores), not the format's" in lines[2]
    line = next(x for x in lines[4].splitlines() if re.match(r"\| real +\| cuda +\| 32² +\| 4 ", x))
    capacities = real[(real["image_size"] == 32) & (real["batch_size"] == 4)]["decode_capacity_fps"]
    assert (f"| {capacities.median():.1f} " in line and f"{capacities.min():.1f}–{capacities.max():.1f}" in line
            and line.rstrip(" |").endswith(str(len(capacities)))), line
    assert loaders.capacity_table(ok[ok["loader"] == "dummy"]) == []


def test_memory_is_defined_and_a_gpu_decode_rows_loader_share_is_shown_apart(tmp_path):
    results = frame.with_speedup(frame.load(write_results(tmp_path)), "torch", "fp32")
    decode = ((results["host"] == "gpu-box") & (results["device"] == "cuda") & (results["loader"] == "real")
              & (results["status"] == "ok"))
    results.loc[decode, "loader"] = "real_gpu_decode"
    results.loc[decode, "memory_mb"] += 100.0
    results = frame.with_loader_memory(results)
    assert results.loc[results["loader"] == "real_gpu_decode", "loader_memory_mb"].round(6).eq(100.0).all()
    assert results.loc[results["loader"] != "real_gpu_decode", "loader_memory_mb"].isna().all()
    ok = results[results["status"] == "ok"]
    _, real = marks.split(ok)
    assert cells.table(real, Scope.END_TO_END)["of which the loader (MB)"].isin(["100.0", "–"]).all()
    assert "of which the loader (MB)" not in cells.table(real[real["device"] == "cpu"], Scope.END_TO_END)
    legend_text = legend.legend_texts(ok, BASELINE)[Scope.END_TO_END]
    assert "*of which the loader* = a GPU-decode row's memory minus" in legend_text
    assert ("A row's memory is its configuration's own: what it needs in a process that ran nothing before it, the "
            "median over its processes where it went first, else the median over all of them"
            ) in " ".join(method.section(ok, BASELINE))


def test_a_mark_every_row_of_a_kind_carries_is_said_once_not_in_every_cell(tmp_path):
    """A CPU study: all 16 real-loader rows marked * told nothing; a mark stays where it tells rows apart."""
    ok = ok_rows(tmp_path)
    ok = ok[ok["host"] == "cpu-box"].copy()
    real = ok["timing_kind"].eq("under_load")
    ok.loc[real, "stalled"] = True
    ok.loc[ok.index[0], "contended"] = True
    every = marks.on_every_row(ok)
    assert every == {Scope.MODEL_ALONE: frozenset(), Scope.END_TO_END: frozenset({"*"})}
    tables = "\n".join(cells.markdown(ok, every))
    assert not [line for line in tables.splitlines() if "*" in line], tables
    assert len([line for line in tables.splitlines() if "§" in line]) == 1, tables
    text = legend.legend_texts(ok, BASELINE)
    assert ("Every end-to-end row carries `*` (below 90% of min(model under load, decode capacity))"
            in text[Scope.END_TO_END])
    assert "`§` measured while other processes used its cores, the machine (CPU rows))" in text[Scope.MODEL_ALONE]
    line = next(line for line in findings.reliability(ok) if "stayed below" in line)
    assert "marked *, left out of the cells of the end-to-end rows, which all carry it" in line, line
