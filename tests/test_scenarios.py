from dataclasses import asdict

import pytest

from fmtbench.measure import scenarios
from fmtbench.settings import DeviceSettings, Harness, Settings, for_device


class FakeClock:
    """Each iteration advances time by the next of `steps` seconds (cycling)."""

    def __init__(self, *steps):
        self.now, self.steps, self.calls = 0.0, steps, 0

    def __call__(self):
        return self.now

    def iteration(self):
        step = self.steps[self.calls % len(self.steps)]
        self.now += step
        self.calls += 1
        return step


def settings(**overrides):
    base = dict(warmup_iters=2, warmup_seconds=0.0, min_iters=5, min_seconds=0.0, max_seconds=100.0, target_ci=0.0,
                throughput_seconds=0.0, energy_seconds=0.0)
    return DeviceSettings(**{**base, **overrides})


def latency(clock, on_timing_start=None, **overrides):
    return scenarios.Latency(settings(**overrides), noisy_iqr_ratio=0.1, now=clock).run(clock.iteration,
                                                                                     on_timing_start)


def test_warmup_runs_until_both_iterations_and_seconds_are_reached():
    clock = FakeClock(0.25)
    result = latency(clock, warmup_iters=2, warmup_seconds=1.0)
    assert result.warmup_iters == 4  # 1 s at 0.25 s per iteration outlasts 2 iterations
    assert len(result.samples_ms) == 5 and result.stop == "min"


def test_timed_phase_needs_min_iters_and_min_seconds():
    clock = FakeClock(0.25)
    assert len(latency(clock, min_iters=3, min_seconds=2.0).samples_ms) == 8
    clock = FakeClock(1.0)
    assert len(latency(clock, min_iters=7, min_seconds=2.0).samples_ms) == 7


def test_min_iters_is_a_floor_even_past_max_seconds():
    """Three 3-second samples used to be a row's whole statistics (CPU rows); min_iters now always holds."""
    clock = FakeClock(3.0)
    result = latency(clock, min_iters=5, max_seconds=7.0, target_ci=0.01)
    assert len(result.samples_ms) == 5 and result.stop == "max_seconds"


def test_a_steady_row_stops_as_soon_as_its_median_is_known_to_the_target():
    clock = FakeClock(0.001)
    result = latency(clock, min_iters=20, target_ci=0.01)
    assert result.stop == "ci" and len(result.samples_ms) == 20


def test_a_noisy_row_takes_more_samples_until_the_cap():
    clock = FakeClock(0.001, 0.002, 0.0015, 0.003)   # ±50 % around the median: the interval never narrows to 1 %
    result = latency(clock, min_iters=20, target_ci=0.01, max_seconds=1.0)
    assert result.stop == "max_seconds" and len(result.samples_ms) > 400


def test_timing_start_callback_runs_between_warmup_and_timing():
    clock, seen = FakeClock(0.5), []
    latency(clock, lambda: seen.append(clock.calls), warmup_iters=3)
    assert seen == [3]



def test_measurement_is_built_once_from_the_config_and_recorded_in_every_row():
    """One record from config.yaml's nesting (the device's section, the shared thresholds and harness) to the row:
    the job's params are its JSON, the row records it as it is."""
    section = {"cuda": dict(processes=2, max_processes=5, warmup_iters=1, warmup_seconds=0, min_iters=3,
                            min_seconds=0, max_seconds=12, target_ci=0.01, throughput_seconds=0.25,
                            energy_seconds=1.0, end_to_end_processes=None),
               "noisy_iqr_ratio": 0.1, "unstable_spread": 0.05, "host_bound_share": 0.9,
               "harness": {**asdict(Harness()), "contention_watch": False}}
    params = for_device(section, "cuda")
    measurement = Settings.from_json(params)
    assert measurement.to_json() == params
    assert (measurement.warmup_iters, measurement.max_seconds, measurement.processes) == (1, 12, 2)
    assert not measurement.switches.contention_watch and measurement.switches.device_memory_sampling
    assert measurement.unstable_spread == 0.05 and measurement.noisy_iqr_ratio == 0.1
    assert measurement.host_bound_share == 0.9
    assert measurement.stall_timeout() == 300 + 3 * (0 + 12 + 0.25 + 1.0)
    with pytest.raises(KeyError):  # a missing key is an error, not a silent default
        for_device({**section, "cuda": {}}, "cuda")["min_iters"]


def test_throughput_runs_blocks_back_to_back_with_one_sync_per_block():
    """A serving loop queues calls; per-call synchronisation hid the overlap (TorchScript fp16 224² bs 32 on the
    H100: 1.271 ms synchronised, 1.106 ms back to back)."""
    clock, syncs, calls = FakeClock(0.0), [], []

    def call():
        calls.append(1)
        clock.now += 0.001          # 1 ms of host work per call, overlapped: no wait until the sync

    def sync():
        syncs.append(len(calls))
        clock.now += 0.0002         # the device finishes the block's tail
    result = scenarios.BackToBack(0.5, now=clock).run(call, sync, batch_size=32, latency_ms=1.2)
    assert result.calls_per_block == scenarios.calls_per_block(1.2) == 42   # ~50 ms blocks
    assert result.blocks >= scenarios.MIN_BLOCKS and result.seconds >= 0.5
    assert syncs[0] == 0 and all(b - a == 42 for a, b in zip(syncs[1:], syncs[2:]))  # one sync per block
    assert result.images_per_s == pytest.approx(32 * 42 / (42 * 0.001 + 0.0002))


def test_under_load_times_whole_rounds_back_to_back_and_reads_the_model_timer():
    clock = FakeClock(0.0)

    class Timer:
        def __init__(self):
            self.times = []

        def run(self, fn):
            start = clock.now
            fn()
            self.times.append((clock.now - start) * 1e3)

        def read_ms(self):
            times, self.times = self.times, []
            return times

    def fetch():
        clock.now += 0.003  # waiting for the loader
        return "batch"

    def run(batch):
        clock.now += 0.002
    process = scenarios.UnderLoad(settings(warmup_iters=3), 0.1, batches=8, now=clock).run(fetch, run, Timer(),
                                                                                           lambda: None)
    assert process.kind == "under_load" and process.stop == "rounds" and process.warmup_iters == 3
    assert len(process.samples_ms) == 8 and process.summary.median == pytest.approx(2.0)
    assert process.timed_seconds == pytest.approx(8 * 0.005)  # the end-to-end phase counts the waits too


def test_the_end_to_end_rate_leaves_out_the_batches_the_loader_held_ready():
    """GPU decode read 14.1k img/s end to end against 12.4k of decode capacity on the H100: the timed phase began
    with full queues. Those batches are taken first and the rate is counted over the rest."""
    clock = FakeClock(0.0)
    ready = [6]  # the loader's queues hold 6 batches when the phase starts, then it makes one per 10 ms

    class Timer:
        def run(self, fn):
            fn()

        def read_ms(self):
            return [1.0] * 20

    def fetch():
        if ready[0]:
            ready[0] -= 1
        else:
            clock.now += 0.010
        return "batch"

    def run(batch):
        clock.now += 0.001

    process = scenarios.UnderLoad(settings(warmup_iters=0, min_iters=1), 0.1, batches=14, buffered=6,
                                  now=clock).run(fetch, run, Timer(), lambda: None)
    assert process.steady_batches == 14 and len(process.samples_ms) == 20
    whole = 20 / process.timed_seconds
    steady = process.steady_batches / process.steady_seconds
    assert steady == pytest.approx(1 / 0.011, rel=0.1) and whole > 1.2 * steady, (whole, steady)
