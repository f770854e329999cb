import json
import math

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmtbench import stats
from fmtbench.typedjson import field_names, from_json, json_schema


def test_summary_of_known_values():
    summary = stats.Summary.of([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (summary.count, summary.median, summary.mean, summary.min, summary.max) == (5, 3.0, 3.0, 1.0, 5.0)
    assert summary.std == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    assert summary.p90 == pytest.approx(np.percentile([1, 2, 3, 4, 5], 90))


def test_the_interval_of_few_samples_says_its_real_coverage():
    """3 samples: the old '95 % CI' was [min, max]; its coverage of the median is 75 %, and now says so."""
    low, high, coverage = stats.median_ci(np.array([1.0, 2.0, 3.0]))
    assert (low, high) == (1.0, 3.0)
    assert coverage == pytest.approx(0.75)
    assert stats.median_ci(np.arange(5.0))[2] == pytest.approx(1 - 2 / 32)
    assert stats.median_ci(np.arange(6.0))[2] >= 0.95


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=2, max_value=400))
def test_interval_is_the_narrowest_symmetric_one_reaching_95_percent(n):
    values = np.arange(float(n))
    low, high, coverage = stats.median_ci(values)
    k = int(low)
    assert high == n - 1 - k and low <= np.median(values) <= high

    def cover(j):
        return 1 - 2 * sum(math.comb(n, i) for i in range(j + 1)) / 2 ** n
    assert coverage == pytest.approx(cover(k), abs=1e-9)
    if cover(0) >= 0.95:
        assert cover(k) >= 0.95 and (2 * (k + 1) >= n or cover(k + 1) < 0.95)


def test_interval_covers_the_true_median_at_least_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = sum(low <= np.log(2) <= high for low, high, _ in
               (stats.median_ci(np.sort(rng.exponential(1.0, 60))) for _ in range(400)))
    assert 0.93 <= hits / 400 <= 0.995


def test_noisy_flag_follows_iqr_over_median():
    assert not stats.Summary.of([10, 10.1, 9.9, 10, 10]).noisy
    assert stats.Summary.of([10, 15, 5, 20, 10]).noisy


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        stats.Summary.of([])


def _process(samples, rate=None):
    throughput = stats.Throughput.of([0.1, 0.1, 0.1], 10, int(rate / 100)) if rate else None
    return stats.ProcessTiming(kind="latency", samples_ms=list(samples), summary=stats.Summary.of(samples),
                               warmup_iters=3, warmup_seconds=0.1, timed_seconds=0.2, stop="ci",
                               throughput=throughput)


def test_row_timing_is_the_median_of_process_medians_and_their_spread():
    """The bimodal eager fp16 row of the H100 (1.79 ms in one process, 2.59 in another) is visible now."""
    row = stats.Timing.of([_process([1.79] * 30), _process([2.59] * 30), _process([1.80] * 30)],
                          clock="c", noisy_iqr_ratio=0.1, unstable_spread=0.05, host_bound_share=0.9)
    assert row.median == pytest.approx(1.80)
    assert row.spread == pytest.approx((2.59 - 1.79) / 1.80)
    assert row.unstable and len(row.processes) == 3 and row.pooled.count == 90
    steady = stats.Timing.of([_process([1.0] * 5)] * 3, clock="c", noisy_iqr_ratio=0.1, unstable_spread=0.05,
                             host_bound_share=0.9)
    assert steady.spread == 0 and not steady.unstable


def test_the_row_interval_belongs_to_the_row_median_not_to_the_pooled_samples():
    """torch fp16 dummy b40 on the H100: median of process medians 1.740, pooled 'CI' 1.870-2.031 (28 of 105 rows
    had their median outside their own interval). The row's interval is that of the median of the medians."""
    processes = [_process([1.74] * 40), _process([1.70] * 40), _process([2.0] * 200)]
    row = stats.Timing.of(processes, clock="c", noisy_iqr_ratio=0.1, unstable_spread=0.05, host_bound_share=0.9)
    assert row.median == pytest.approx(1.74)
    assert row.ci_low <= row.median <= row.ci_high and row.ci_coverage == pytest.approx(0.75)
    assert not (row.pooled.ci_low <= row.median <= row.pooled.ci_high), "the pooled interval misses the row"
    two = stats.Timing.of(processes[:2], clock="c", noisy_iqr_ratio=0.1, unstable_spread=0.05, host_bound_share=0.9)
    assert (two.ci_low, two.ci_high, two.ci_coverage) == (pytest.approx(1.70), pytest.approx(1.74), 0.5)


def test_row_throughput_is_the_median_of_its_processes_back_to_back_rates():
    row = stats.Timing.of([_process([1.0] * 5, 1000), _process([1.0] * 5, 1200), _process([1.0] * 5, 1100)],
                          clock="c", noisy_iqr_ratio=0.1, unstable_spread=0.05, host_bound_share=0.9)
    assert row.throughput_fps == pytest.approx(1100) and row.throughput_spread == pytest.approx(200 / 1100)


def test_schema_is_derived_from_the_dataclasses_and_round_trips():
    row = stats.Timing.of([_process([1.0, 1.1, 0.9], 900)], clock="c", noisy_iqr_ratio=0.1, unstable_spread=0.05,
                          host_bound_share=0.9)
    document = json.loads(json.dumps(row.to_json()))
    schema = json_schema(stats.Timing)
    jsonschema.validate(document, schema)
    bare = json.loads(json.dumps(stats.Timing.of([_process([1.0])], "c", 0.1, 0.05, 0.9).to_json()))
    jsonschema.validate(bare, schema)  # no throughput phase: nulls where the figures are absent
    omitted = {"gpu_busy_share", "rate_busy_share", "host_bound"}  # absent where not measured
    assert schema["required"] == [name for name in field_names(stats.Timing) if name not in omitted]
    assert from_json(stats.Timing, document) == row
    assert schema["properties"]["processes"]["items"]["properties"]["samples_ms"]["type"] == "array"
    document["processes"][0]["summary"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema)


def test_a_row_whose_processes_disagree_on_throughput_alone_is_unstable():
    """torch_autocast 224² batch 48 on the H100: latency spread 0.3 %, back-to-back spread 31.8 %, no mark."""
    row = stats.Timing.of([_process([1.0] * 6, 1000), _process([1.0] * 6, 1300)], clock="c", noisy_iqr_ratio=0.1,
                          unstable_spread=0.05, host_bound_share=0.9)
    assert row.spread == 0 and row.throughput_spread == pytest.approx(300 / 1150) and row.unstable


def _busy(share: float) -> stats.ProcessTiming:
    from dataclasses import replace
    process = _process([2.0] * 6)  # no back-to-back phase: the synchronised call's share alone
    return replace(process, gpu_ms=share * process.summary.median)


def test_a_row_is_host_bound_when_the_gpu_is_idle_for_part_of_a_call_in_some_process():
    launch_bound = stats.Timing.of([_busy(0.97), _busy(0.6)], "c", 0.1, 0.05, host_bound_share=0.9)
    assert launch_bound.host_bound is True and launch_bound.gpu_busy_share == pytest.approx(0.6)
    assert launch_bound.process_range == (2.0, 2.0)
    gpu_bound = stats.Timing.of([_busy(0.97), _busy(0.95)], "c", 0.1, 0.05, host_bound_share=0.9)
    assert gpu_bound.host_bound is False
    unknown = stats.Timing.of([_process([2.0] * 6, 1000)], "c", 0.1, 0.05, 0.9)
    assert unknown.host_bound is None and "host_bound" not in unknown.to_json(), "not measured: not claimed"


def test_a_row_whose_back_to_back_phase_leaves_the_gpu_idle_is_host_bound_though_its_synced_calls_are_not():
    """Eager torch fp16 224² batch 64 on an H100 (2026-12-07, run A): device time 1.742 ms, a synchronised call
    1.84 ms (0.95 busy), but 4 blocks of 28 calls back to back took 0.3246 s: 2.90 ms a call, the GPU busy 0.60 of
    the phase, so the rate (21,656 img/s against the 36,700 the device time allows) is the host's."""
    from dataclasses import replace
    process = _process([1.84] * 6, 1000)
    rate = stats.Throughput.of([0.3246 / 4] * 4, 28, 64)
    queued_slowly = replace(process, gpu_ms=1.742, throughput=rate)
    assert queued_slowly.gpu_busy_share == pytest.approx(0.947, abs=1e-3)
    assert queued_slowly.rate_busy_share == pytest.approx(1.742e-3 * 112 / 0.3246)
    row = stats.Timing.of([queued_slowly, replace(queued_slowly, throughput=stats.Throughput.of([0.05] * 4, 28, 64))],
                          "c", 0.1, 0.05, host_bound_share=0.9)
    assert row.host_bound is True and row.rate_busy_share == pytest.approx(0.60, abs=0.01)
    assert row.gpu_busy_share == pytest.approx(0.947, abs=1e-3), "the synchronised call's share is kept apart"
    steady = stats.Timing.of([replace(queued_slowly, throughput=stats.Throughput.of([0.05] * 4, 28, 64))], "c", 0.1,
                             0.05, host_bound_share=0.9)
    assert steady.host_bound is False and steady.rate_busy_share == pytest.approx(1.742e-3 * 28 / 0.05)
    document = row.to_json()
    assert document["rate_busy_share"] == pytest.approx(row.rate_busy_share)
    no_device_time = stats.Timing.of([replace(process, throughput=rate)], "c", 0.1, 0.05, 0.9)
    assert no_device_time.host_bound is None and "rate_busy_share" not in no_device_time.to_json()
