from fmtbench import timing


class FakeClock:
    """Each iteration advances time by `step` seconds."""

    def __init__(self, step):
        self.now, self.step, self.calls = 0.0, step, 0

    def __call__(self):
        return self.now

    def iteration(self):
        self.now += self.step
        self.calls += 1
        return self.step


def settings(**overrides):
    base = dict(warmup_iters=2, warmup_seconds=0.0, min_iters=5, min_seconds=0.0, max_seconds=100.0)
    return timing.Settings(**{**base, **overrides})


def test_warmup_runs_until_both_iterations_and_seconds_are_reached():
    clock = FakeClock(0.25)
    result = timing.measure(clock.iteration, settings(warmup_iters=2, warmup_seconds=1.0), now=clock)
    assert result.warmup_iters == 4  # 1 s at 0.25 s per iteration outlasts 2 iterations
    assert len(result.times) == 5


def test_timed_phase_needs_min_iters_and_min_seconds():
    clock = FakeClock(0.25)
    result = timing.measure(clock.iteration, settings(min_iters=3, min_seconds=2.0), now=clock)
    assert len(result.times) == 8
    assert not result.truncated
    clock = FakeClock(1.0)
    result = timing.measure(clock.iteration, settings(min_iters=7, min_seconds=2.0), now=clock)
    assert len(result.times) == 7


def test_max_seconds_stops_the_timed_phase_and_says_so():
    clock = FakeClock(3.0)
    result = timing.measure(clock.iteration, settings(min_iters=10, max_seconds=7.0), now=clock)
    assert len(result.times) == 3
    assert result.truncated
    assert result.timed_seconds == 9.0


def test_cpu_clock_times_the_call():
    import time
    assert timing.CpuClock().time(lambda: time.sleep(0.02)) >= 0.02


def test_settings_from_config_ignore_nothing_and_need_everything():
    section = dict(warmup_iters=1, warmup_seconds=0, min_iters=3, min_seconds=0, max_seconds=12)
    assert timing.Settings.from_config(section) == timing.Settings(1, 0, 3, 0, 12)
