import time

import pytest

from fmtbench.measure import monitors
from fmtbench.settings import Harness
from fmtbench.workflow import gpus


class FakeNvml:
    def __init__(self):
        self.used, self.energy, self.reasons = 1000, 5_000, 0

    def memory_used(self):
        return self.used

    def energy_mj(self):
        return self.energy

    def sample(self):
        return {"sm_clock_mhz": 1980, "power_w": 300.0, "reasons": self.reasons}

    def power_limit_w(self):
        return 700.0


def test_device_monitor_measures_each_configuration_outside_the_child(monkeypatch):
    fake = FakeNvml()
    mb = 1024 * 1024
    monkeypatch.setattr(gpus.Nvml, "open", classmethod(lambda cls, uuid=None, pci_bus_id=None: fake))
    monitor = monitors.DeviceMonitor(interval=0.001, clock_every=1)
    assert monitor.on_mark("baseline", {"uuid": "x"}) == {"device_memory": True}
    fake.used = 1000 + 300 * mb           # the model: 300 MB
    monitor.on_mark("loaded", {})
    fake.used = 1000 + 310 * mb           # first configuration: its input batch (10 MB), then its baseline
    monitor.on_mark("config_start", {})
    monitor.on_mark("timing_start", {})
    fake.used = 1000 + 510 * mb
    fake.reasons = 0x4  # software power cap
    time.sleep(0.05)
    monitor.on_mark("energy_start", {})
    fake.used, fake.energy = 1000 + 400 * mb, 65_000
    monitor.on_mark("energy_end", {})
    readings = monitor.on_mark("config_end", {})
    assert readings["memory"].allocated_mb == pytest.approx(300 + 200, abs=1)   # load + its own peak growth
    assert readings["memory"].load_mb == pytest.approx(300, abs=1)
    assert readings["gpu"].energy.joules == pytest.approx(60.0)
    assert readings["gpu"].throttled and "sw_power_cap" in readings["gpu"].clock_event_reasons
    # the next configuration starts from what is left after the first released its memory
    fake.used, fake.reasons = 1000 + 320 * mb, 0
    monitor.on_mark("config_start", {})
    fake.used = 1000 + 420 * mb
    time.sleep(0.02)
    second = monitor.on_mark("config_end", {})
    assert second["memory"].allocated_mb == pytest.approx(300 + 100, abs=1)
    assert not second["gpu"].throttled and second["gpu"].energy is None
    monitor.on_mark("closed", {})
    assert monitor._thread is None


def test_without_nvml_the_child_tracks_device_memory_itself(monkeypatch):
    monkeypatch.setattr(gpus.Nvml, "open", classmethod(lambda cls, uuid=None, pci_bus_id=None: None))
    assert monitors.DeviceMonitor().on_mark("baseline", {}) == {"device_memory": False}


def test_without_sampling_device_memory_is_read_at_the_marks_only_and_the_row_says_so(monkeypatch):
    """The harness switch the ablation flips: no thread samples NVML while the child is timed."""
    fake = FakeNvml()
    mb = 1024 * 1024
    monkeypatch.setattr(gpus.Nvml, "open", classmethod(lambda cls, uuid=None, pci_bus_id=None: fake))
    monitor = monitors.DeviceMonitor(interval=0.001, sampling=False)
    monitor.on_mark("baseline", {})
    assert monitor._thread is None
    monitor.on_mark("loaded", {})
    monitor.on_mark("config_start", {})
    fake.used = 1000 + 500 * mb   # a transient peak between two marks: not seen without sampling
    time.sleep(0.02)
    fake.used = 1000 + 100 * mb
    monitor.on_mark("timing_start", {})
    reading = monitor.on_mark("config_end", {})["memory"]
    assert reading.allocated_mb == pytest.approx(100, abs=1) and reading.method == gpus.MEMORY_METHOD_AT_MARKS
    assert monitor.on_mark("config_end", {})["gpu"].samples >= 1  # clocks read at the marks


def test_the_contention_monitor_watches_each_configuration_from_its_start_to_its_end():
    import os
    monitor = monitors.ContentionMonitor("cpu")
    monitor.on_mark("started", {"pid": os.getpid()})
    assert monitor.on_mark("config_end", {}) == {}, "nothing watched outside a configuration"
    monitor.on_mark("config_start", {})
    sum(range(200_000))
    record = monitor.on_mark("config_end", {})["contention"]
    assert record["cores"] == sorted(os.sched_getaffinity(0)) and record["seconds"] > 0
    assert isinstance(record["contended"], bool) and record["own_cpu_s"] >= 0


def test_the_harness_switches_choose_the_monitors():
    kinds = {device: [type(m).__name__ for m in monitors.for_device(device, Harness()).monitors]
             for device in ("cpu", "cuda")}
    assert kinds == {"cpu": ["ContentionMonitor"], "cuda": ["DeviceMonitor", "ContentionMonitor"]}
    quiet = monitors.for_device("cuda", Harness(device_memory_sampling=False, contention_watch=False)).monitors
    assert [type(m).__name__ for m in quiet] == ["DeviceMonitor"] and not quiet[0].sampling


def test_the_first_calls_peak_is_kept_apart_from_the_steady_state(monkeypatch):
    """cuDNN's autotuning peaks at the first call of a shape, in whichever configuration of a process meets it
    first: the steady figure (the timed phases) does not hold it, so it does not depend on the order."""
    fake = FakeNvml()
    mb = 1024 * 1024
    monkeypatch.setattr(gpus.Nvml, "open", classmethod(lambda cls, uuid=None, pci_bus_id=None: fake))
    monitor = monitors.DeviceMonitor(interval=0.001)
    monitor.on_mark("baseline", {})
    fake.used = 1000 + 100 * mb
    monitor.on_mark("loaded", {})
    monitor.on_mark("config_start", {})  # its baseline: the model in memory (100 MB in use over the process's)
    fake.used = 1000 + 600 * mb   # autotuning's workspaces
    time.sleep(0.02)
    fake.used = 1000 + 300 * mb
    monitor.on_mark("timing_start", {})
    fake.used = 1000 + 350 * mb
    time.sleep(0.02)
    reading = monitor.on_mark("config_end", {})["memory"]
    # each: the model's load (100) + the growth over the configuration's own baseline (300, 600, 350 in use)
    assert reading.first_call_peak_mb == pytest.approx(100 + 500, abs=1)
    assert reading.steady_mb == pytest.approx(100 + 250, abs=1)
    assert reading.allocated_mb == pytest.approx(100 + 500, abs=1), "the overall peak, as before"
    monitor.on_mark("closed", {})
