from fmtbench import timing


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
    base = dict(repeats=1, warmup_iters=2, warmup_seconds=0.0, min_iters=5, min_seconds=0.0, max_seconds=100.0,
                target_ci=0.0)
    return timing.Settings(**{**base, **overrides})


def test_warmup_runs_until_both_iterations_and_seconds_are_reached():
    clock = FakeClock(0.25)
    result = timing.measure(clock.iteration, settings(warmup_iters=2, warmup_seconds=1.0), now=clock)
    assert result.warmup_iters == 4  # 1 s at 0.25 s per iteration outlasts 2 iterations
    assert len(result.samples_ms) == 5 and result.stop == "min"


def test_timed_phase_needs_min_iters_and_min_seconds():
    clock = FakeClock(0.25)
    assert len(timing.measure(clock.iteration, settings(min_iters=3, min_seconds=2.0), now=clock).samples_ms) == 8
    clock = FakeClock(1.0)
    assert len(timing.measure(clock.iteration, settings(min_iters=7, min_seconds=2.0), now=clock).samples_ms) == 7


def test_min_iters_is_a_floor_even_past_max_seconds():
    """Three 3-second samples used to be a row's whole statistics (CPU rows); min_iters now always holds."""
    clock = FakeClock(3.0)
    result = timing.measure(clock.iteration, settings(min_iters=5, max_seconds=7.0, target_ci=0.01), now=clock)
    assert len(result.samples_ms) == 5 and result.stop == "max_seconds"


def test_a_steady_row_stops_as_soon_as_its_median_is_known_to_the_target():
    clock = FakeClock(0.001)
    result = timing.measure(clock.iteration, settings(min_iters=20, target_ci=0.01), now=clock)
    assert result.stop == "ci" and len(result.samples_ms) == 20


def test_a_noisy_row_takes_more_samples_until_the_cap():
    clock = FakeClock(0.001, 0.002, 0.0015, 0.003)   # ±50 % around the median: the interval never narrows to 1 %
    result = timing.measure(clock.iteration, settings(min_iters=20, target_ci=0.01, max_seconds=1.0), now=clock)
    assert result.stop == "max_seconds" and len(result.samples_ms) > 400


def test_timing_start_callback_runs_between_warmup_and_timing():
    clock, seen = FakeClock(0.5), []
    timing.measure(clock.iteration, settings(warmup_iters=3), on_timing_start=lambda: seen.append(clock.calls),
                   now=clock)
    assert seen == [3]


def test_cpu_clock_times_the_call():
    import time
    assert timing.CpuClock().time(lambda: time.sleep(0.02)) >= 0.02


def test_settings_from_config_need_every_field():
    section = dict(repeats=3, warmup_iters=1, warmup_seconds=0, min_iters=3, min_seconds=0, max_seconds=12,
                   target_ci=0.01)
    assert timing.Settings.from_config(section) == timing.Settings(3, 1, 0, 3, 0, 12, 0.01)
