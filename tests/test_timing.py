import time

from fmtbench.measure import timing


def test_cpu_clock_times_the_call():
    assert timing.CpuClock().time(lambda: time.sleep(0.02)) >= 0.02


def test_cpu_calls_back_to_back_are_timed_one_by_one():
    timer = timing.PerfCounterCalls()
    for seconds in (0.01, 0.02):
        timer.run(lambda s=seconds: time.sleep(s))
    first, second = timer.read_ms()
    assert 10 <= first < second and timer.read_ms() == []  # read once: the next phase starts empty
