"""tools/host_timeline.py: the host's timeline is recorded, and a CPU row's slow calls are related to what it shows."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import host_timeline  # noqa: E402


def _cpu_row(path: Path, forked_at: float, samples: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "status": "ok", "config": {"device": "cpu", "loader": "dummy", "format": "torch", "batch_size": 32},
        "processes": [{"process": 1, "stages_s": {"forked_at": forked_at}, "config_stages_s": {"timing_start": 1.0}}],
        "timing": {"processes": [{"samples_ms": samples}]}}))


def test_relate_finds_the_series_the_slow_calls_follow(tmp_path):
    start = 1_000_000.0
    samples = [100.0] * 20 + [200.0] * 10 + [100.0] * 20   # a slow stretch of 2 s in the middle
    _cpu_row(tmp_path / "results" / "torch" / "cpu-fp32" / "224" / "dummy-bs32.json", start, samples)
    lines, placed = [], start + 1.0
    times = []
    for ms in samples:
        times.append((placed + ms / 2e3, ms > 150))
        placed += ms / 1e3
    t = start
    while t < placed + 2:
        slow = any(abs(when - (t + 0.05)) < 0.1 and is_slow for when, is_slow in times)
        lines.append({"t": t + 0.1, "seconds": 0.1, "busy": {"cpu0": 0.5, "cpu1": 0.5 + 0.01 * (int(t * 10) % 3)},
                      "pressure": {"memory": 0.3 if slow else 0.01, "cpu": 0.02 + 0.001 * (int(t * 10) % 7)},
                      "vmstat_per_s": {"pgfault": 10.0}, "mhz": 2600.0, "top": []})
        t += 0.1
    timeline = tmp_path / "timeline.jsonl"
    timeline.write_text("".join(json.dumps(line) + "\n" for line in lines))
    text = host_timeline.relate(timeline, tmp_path / "results")
    assert text.startswith("50 CPU samples placed in the timeline (10 slower than 1.3x")
    first = text.split("\n|")[3]   # the table's first row: the series most related to the slowdown
    assert "pressure memory" in first and float(first.split("|")[1]) > 0.8
    assert "vmstat pgfault" not in text   # a constant series says nothing


def test_relate_says_when_there_is_nothing_to_relate(tmp_path):
    timeline = tmp_path / "timeline.jsonl"
    timeline.write_text("")
    assert host_timeline.relate(timeline, tmp_path).startswith("nothing to relate")


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux's /proc")
def test_record_writes_a_line_per_interval_until_terminated(tmp_path):
    out = tmp_path / "timeline.jsonl"
    recorder = subprocess.Popen([sys.executable, str(ROOT / "tools" / "host_timeline.py"), "record", "--out", str(out),
                                 "--every", "0.2"])
    time.sleep(2.0)
    recorder.send_signal(signal.SIGTERM)
    assert recorder.wait(10) == 0
    lines = [json.loads(text) for text in out.read_text().splitlines()]
    assert len(lines) >= 3
    assert {"t", "seconds", "busy", "pressure", "vmstat_per_s", "mhz", "top"} <= set(lines[-1])
    assert all(0 <= share <= 1 for share in lines[-1]["busy"].values())
