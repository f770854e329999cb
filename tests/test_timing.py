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


class _FakeGpu:
    """torch.cuda's part GpuTime uses, on a clock of its own: a spin of n cycles runs n / 1000 ms; the host queues a
    call in `host_ms[i]` ms (the i-th call), which then runs `kernels_ms` on the GPU after the spin, or once queued."""

    def __init__(self, host_ms, kernels_ms=1.0):
        self.host_ms, self.kernels_ms, self.calls, self.spins = list(host_ms), kernels_ms, 0, []
        self.now = self.spin_end = 0.0
        self.recording_start = True  # the next event recorded is a call's start (after its spin)

    def install(self, monkeypatch):
        import torch
        gpu = self

        class Event:
            def __init__(self, enable_timing=False):
                self.at = None

            def record(self):
                self.at = max(gpu.now, gpu.spin_end) if gpu.recording_start else gpu.call_end

            def query(self):
                return gpu.now >= self.at

            def synchronize(self):
                pass

            def elapsed_time(self, other):
                return other.at - self.at

        def sleep(cycles):
            gpu.spins.append(cycles / 1000)
            gpu.spin_end = gpu.now + cycles / 1000
            gpu.recording_start = True

        monkeypatch.setattr(torch.cuda, "Event", Event)
        monkeypatch.setattr(torch.cuda, "_sleep", sleep)
        monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)

    def call(self):
        """The host queues the call: the GPU starts it when both the spin and the host's first launch are done,
        and waits for the host's last launch before the kernels' end."""
        self.recording_start = False
        queued_at = self.now + self.host_ms[min(self.calls, len(self.host_ms) - 1)]
        self.calls += 1
        self.call_end = max(self.spin_end + self.kernels_ms, queued_at + 0.01)
        self.now = queued_at


def _gpu_time(monkeypatch, host_ms):
    import torch
    gpu = _FakeGpu(host_ms)
    gpu.install(monkeypatch)
    timer = timing.GpuTime.__new__(timing.GpuTime)  # its calibration is the GPU's; here 1000 cycles a ms
    timer._torch, timer._cycles_per_ms, timer.retaken, timer.unhidden = torch, 1000.0, 0, 0
    return gpu, timer


def test_a_device_time_sample_the_spin_hid_is_the_kernels_alone(monkeypatch):
    gpu, timer = _gpu_time(monkeypatch, host_ms=[0.5])
    assert timer.time(gpu.call, host_ms=1.0) == 1.0
    assert gpu.spins == [2.0] and timer.retaken == 0 and timer.unhidden == 0


def test_a_host_slower_than_the_spin_gets_its_sample_taken_again_behind_a_longer_spin(monkeypatch):
    """The host took 5 ms to queue a call it usually queues in 1: behind the first spins (2 and 4 ms) the GPU would
    have waited for it and the sample read the host's gaps; behind 8 ms it reads the kernels."""
    gpu, timer = _gpu_time(monkeypatch, host_ms=[5.0])
    assert timer.time(gpu.call, host_ms=1.0) == 1.0
    assert gpu.spins == [2.0, 4.0, 8.0] and timer.retaken == 2 and timer.unhidden == 0


def test_a_call_no_spin_hides_keeps_its_last_sample_and_says_so(monkeypatch):
    gpu, timer = _gpu_time(monkeypatch, host_ms=[100.0])
    assert timer.time(gpu.call, host_ms=1.0) > 1.0
    assert len(gpu.spins) == timing.SPIN_DOUBLINGS + 1 and timer.unhidden == 1


def test_a_model_alone_row_records_how_many_of_its_device_time_samples_were_taken_again(monkeypatch):
    """The scenario keeps the spin check's counts in the process's timing (the row's JSON), not only in its log:
    here the host queued two calls in 5 ms where it usually takes 1: the first sample was taken behind spins of
    2, 4 and 8 ms, the other six behind 2 ms."""
    from dataclasses import replace
    from types import SimpleNamespace

    from fmtbench.measure import scenarios
    from fmtbench.settings import DeviceSettings
    from fmtbench.typedjson import to_json
    gpu, timer = _gpu_time(monkeypatch, host_ms=[5.0, 5.0, 0.5])
    monkeypatch.setattr(timing, "GpuTime", lambda: timer)
    session = SimpleNamespace(prepare=lambda batch: batch, run=lambda prepared: None,
                              run_queued=lambda prepared: gpu.call(), own_stream=False)
    source = SimpleNamespace(next=lambda: "batch", start_timing=lambda: None)
    clock = SimpleNamespace(synchronous=False, time=lambda fn: (fn(), 0.001)[1], sync=lambda: None)
    settings = DeviceSettings(warmup_iters=0, warmup_seconds=0, min_iters=3, min_seconds=0, max_seconds=1.0)
    scenario = scenarios.ModelAlone(settings, 0.1, "cuda", energy=False, batches=1)
    process = scenario.run(session, source, clock, 8, lambda mark: None)
    assert process.gpu_ms == 1.0, "every sample ended behind a spin that hid the host"
    assert (process.gpu_retaken, process.gpu_unhidden) == (2, 0) and gpu.calls == scenarios.GPU_TIME_CALLS + 2
    record = to_json(process)
    assert (record["gpu_retaken"], record["gpu_unhidden"]) == (2, 0)
    assert "gpu_retaken" not in to_json(replace(process, gpu_ms=None, gpu_retaken=None, gpu_unhidden=None)), \
        "a process without device time (or from before the check) has no such key"
