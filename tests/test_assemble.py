"""A row's figures from its processes' readings."""
import pytest

from fmtbench import results, row_parts, stats
from fmtbench.measure import assemble


def _timing(median_ms, throughput=None, kind="latency"):
    samples = [median_ms] * 5
    process = stats.ProcessTiming(kind=kind, samples_ms=samples, summary=stats.Summary.of(samples), warmup_iters=1,
                                  warmup_seconds=0, timed_seconds=0.1, stop="min",
                                  throughput=stats.Throughput.of([throughput], 1, 4) if throughput else None)
    return stats.Timing.of([process], "c", 0.1, 0.05, 0.9)


def _loader(end_to_end_fps=90.0, concurrent=True):
    return row_parts.LoaderStats(data_wait_ms=None, batches_timed=24, producer="p", producers=2,
                                concurrent=concurrent, produce_ms_per_batch=None, decode_capacity_fps=100.0,
                                distinct_images_per_batch=4, end_to_end_fps=end_to_end_fps)


def test_end_to_end_expectation_depends_on_whether_decoding_overlaps_the_model():
    under_load = _timing(4 / 200 * 1e3, kind="under_load")  # the model under load: 200 img/s
    overlapped = assemble.rates(4, under_load, [_loader()])
    assert overlapped.expected_fps == pytest.approx(100) and not overlapped.stalled
    assert overlapped.basis == "under_load" and overlapped.model_fps == pytest.approx(200)
    serial = assemble.rates(4, under_load, [_loader(62.0, concurrent=False)])
    assert serial.expected_fps == pytest.approx(1 / (1 / 200 + 1 / 100)) and not serial.stalled
    stalled = assemble.rates(4, under_load, [_loader(30.0)])
    assert stalled.stalled and stalled.pipeline_efficiency == pytest.approx(0.3)


def test_model_throughput_of_a_dummy_row_is_its_back_to_back_rate_not_batch_over_latency():
    rates = assemble.rates(4, _timing(4 / 200 * 1e3, throughput=4 / 230), [])
    assert rates.model_fps == pytest.approx(230) and rates.basis == "back_to_back"
    assert rates.latency_fps == pytest.approx(200) and rates.end_to_end_fps is None


def _memory(allocated, shared=None):
    return row_parts.MemoryReading(method="m", baseline_mb=1.0, peak_mb=2.0, allocated_mb=allocated, shared=shared)


def test_a_rows_memory_is_the_median_process_and_a_shared_figure_only_where_no_process_has_its_own():
    summary = assemble.memory_summary([_memory(300.0), _memory(200.0, shared="graph kept"), _memory(310.0)])
    assert summary.allocated_mb == 300.0 and summary.shared is None
    assert summary.allocated_mb_processes == [300.0, 200.0, 310.0]
    only_shared = assemble.memory_summary([_memory(200.0, shared="graph kept")])
    assert only_shared.allocated_mb == 200.0 and only_shared.shared == "graph kept"


def test_a_rows_memory_is_its_processes_median_steady_figure_and_says_when_they_disagree():
    """TorchScript fp16 224² batch 32 read 160, 220, 160, 220, 160 MB on the H200 with the order of its processes;
    two processes published the lower. The steady figure is their median, and their disagreement is recorded."""
    def process(steady, first_call):
        return row_parts.MemoryReading(method="m", baseline_mb=1.0, peak_mb=2.0, allocated_mb=first_call,
                                      steady_mb=steady, first_call_peak_mb=first_call)
    agreeing = assemble.memory_summary([process(220.0, 280.0), process(222.0, 230.0)])
    assert agreeing.steady_mb == pytest.approx(221.0) and agreeing.steady_disagree is False
    assert agreeing.first_call_peak_mb == pytest.approx(255.0)
    apart = assemble.memory_summary([process(160.0, 160.0), process(220.0, 280.0)])
    assert apart.steady_disagree is True and apart.steady_mb == pytest.approx(190.0), "not the lower one"
    assert apart.steady_mb_processes == [160.0, 220.0]
    assert assemble.memory_summary([process(500.0, 500.0), process(507.0, 507.0)]).steady_disagree is False


def test_an_end_to_end_rate_above_the_loaders_capacity_is_flagged():
    under_load = _timing(4 / 200 * 1e3, kind="under_load")
    assert assemble.rates(4, under_load, [_loader(101.0)]).above_capacity is False   # within 2 %
    assert assemble.rates(4, under_load, [_loader(114.1)]).above_capacity is True    # the H100's 14.1k vs 12.4k


def test_a_rows_memory_comes_from_the_processes_where_it_went_first_else_from_all():
    """Inductor fp16 224² batch 32 on the H200 read 128 MB where it went first in its process and 222 MB where it
    followed batch 64 (whose CUDA-graph pool was still held), in both runs: the row's figure must not depend on how
    many processes each order got."""
    def process(steady):
        return row_parts.MemoryReading(method="m", baseline_mb=1.0, peak_mb=2.0, allocated_mb=steady, steady_mb=steady,
                                      first_call_peak_mb=steady)
    two = assemble.memory_summary([process(128.0), process(222.0)], [1, 2])
    three = assemble.memory_summary([process(128.0), process(222.0), process(222.0)], [1, 2, 2])
    assert two.steady_mb == three.steady_mb == 128.0 and two.chosen_from == "first"
    assert two.steady_disagree is True and two.steady_mb_processes == [128.0, 222.0]
    never_first = assemble.memory_summary([process(300.0), process(310.0)], [2, 3])
    assert never_first.steady_mb == 305.0 and never_first.chosen_from == "median"


def test_a_real_loader_row_is_bound_by_its_slower_stage():
    """CPU-decode CUDA rows on the H200 reached 80-92 % of their decode capacity with a model 3-10x faster: the
    loader sets them, whatever share of the capacity they reached."""
    assert results.pipeline_bound(model_fps=33542.0, capacity_fps=3726.0) == "loader"
    assert results.pipeline_bound(model_fps=212.0, capacity_fps=517.0) == "model"   # a CPU row
    assert results.pipeline_bound(model_fps=212.0, capacity_fps=None) is None
