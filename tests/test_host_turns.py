"""The host in turns (fmtbench.host_turns): a CPU row's measuring process runs only while no real loader's
workers, export or reference hold a shared turn; shared holders run side by side; a holder that dies lets go."""
import os
import signal
import subprocess
import sys
import time

import pytest

from fmtbench import host_turns

HOLD = """
import sys, time
from fmtbench import host_turns
turns = host_turns.Turns(sys.argv[1])
taken = turns.take(sys.argv[2])
print(f"{taken.waited_s}", flush=True)
time.sleep(float(sys.argv[3]))
"""


def _holder(path, kind, seconds, wait=True):
    """Another process holding a turn of `kind` for `seconds`; returns once it holds it (`wait`), or at once."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(path), kind, str(seconds)], stdout=subprocess.PIPE,
                               text=True)
    if wait:
        process.stdout.readline()
    return process


def test_an_exclusive_turn_waits_for_a_shared_holder_and_shared_holders_run_side_by_side(tmp_path):
    path = tmp_path / "host.lock"
    holder = _holder(path, host_turns.SHARED, 1.5)
    try:
        shared = host_turns.Turns(str(path))
        assert shared.take(host_turns.SHARED).waited_s < 0.5, "a shared turn beside a shared one"
        shared.close()
        exclusive = host_turns.Turns(str(path))
        taken = exclusive.take(host_turns.EXCLUSIVE)
        assert taken.kind == host_turns.EXCLUSIVE and taken.coordinated
        assert 0.8 <= taken.waited_s < 10, taken
    finally:
        holder.wait(timeout=30)
    # held exclusively, a shared one waits in turn
    waiter = _holder(path, host_turns.SHARED, 0, wait=False)
    time.sleep(3)  # its interpreter starts, then waits
    exclusive.release()
    assert waiter.wait(timeout=30) == 0
    assert float(waiter.stdout.read()) >= 0.5, "it waited for the exclusive turn"
    exclusive.close()


def test_a_holder_killed_lets_go_of_its_turn(tmp_path):
    path = tmp_path / "host.lock"
    holder = _holder(path, host_turns.EXCLUSIVE, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    turns = host_turns.Turns(str(path))
    assert turns.take(host_turns.SHARED).waited_s < 1
    turns.close()


def test_a_turn_held_again_is_kept_and_another_kind_is_changed_to(tmp_path):
    turns = host_turns.Turns(str(tmp_path / "host.lock"))
    assert turns.take(host_turns.SHARED).waited_s == 0
    assert turns.take(host_turns.SHARED) == host_turns.Taken(host_turns.SHARED, 0.0)
    assert turns.take(host_turns.EXCLUSIVE).kind == host_turns.EXCLUSIVE
    turns.close()
    with pytest.raises(ValueError, match="exclusive or shared"):
        turns.take("both")


def test_without_a_lock_file_work_goes_on_and_says_so_once(tmp_path, caplog):
    missing = tmp_path / "no such folder" / "host.lock"
    turns = host_turns.Turns(str(missing))
    with caplog.at_level("WARNING"):
        first, second = turns.take(host_turns.EXCLUSIVE), turns.take(host_turns.SHARED)
    assert not first.coordinated and not second.coordinated
    assert len([r for r in caplog.records if "cannot be coordinated" in r.getMessage()]) == 1


def test_the_lock_file_is_the_machines_unless_named(monkeypatch):
    monkeypatch.delenv(host_turns.ENV, raising=False)
    path = host_turns.lock_path()
    assert os.path.basename(path).startswith("fmtbench-host-") and path.endswith(".lock")
    monkeypatch.setenv(host_turns.ENV, "/tmp/elsewhere.lock")
    assert host_turns.lock_path() == "/tmp/elsewhere.lock"


def test_a_waiter_with_a_heartbeat_beats_while_it_waits_and_gets_the_turn_when_it_is_free(tmp_path):
    """A measuring process waiting for its turn tells its job it is alive (a wait longer than the stall timeout would
    otherwise be taken for a hang)."""
    path = tmp_path / "host.lock"
    holder = _holder(path, host_turns.SHARED, 1.2)
    beats = []
    turns = host_turns.Turns(str(path))
    try:
        taken = turns.take(host_turns.EXCLUSIVE, heartbeat=lambda: beats.append(time.perf_counter()), every_s=0.3)
    finally:
        holder.wait(timeout=30)
    assert taken.waited_s >= 0.6 and len(beats) >= 2, (taken, beats)
    turns.close()


ALTERNATING = """
import sys, time
from fmtbench import host_turns
path, seconds, delay = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
turns = host_turns.Turns(path)
time.sleep(delay)
turns.take(host_turns.SHARED)
print("held", flush=True)
end = time.perf_counter() + seconds
while time.perf_counter() < end:  # held 0.6 s, free 0.2 s: two of these staggered always hold one
    time.sleep(0.6); turns.release(); time.sleep(0.2); turns.take(host_turns.SHARED)
"""


def test_shared_turns_that_overlap_without_end_do_not_starve_an_exclusive_taker(tmp_path):
    """On a host of several GPUs the CUDA jobs' real loaders can hold shared turns back to back for as long as they
    run: an exclusive taker out of patience closes the gate, the holders finish, and it gets its turn."""
    path = tmp_path / "host.lock"
    holders = [subprocess.Popen([sys.executable, "-c", ALTERNATING, str(path), "20", str(delay)],
                                stdout=subprocess.PIPE, text=True) for delay in (0, 0.4)]
    for holder in holders:
        holder.stdout.readline()
    turns = host_turns.Turns(str(path))
    try:
        taken = turns.take(host_turns.EXCLUSIVE, heartbeat=lambda: None, patience_s=0.5)
        assert taken.waited_s < 5, taken  # without the gate: the holders' 20 s
        assert all(holder.poll() is None for holder in holders), "the holders were still taking shared turns"
        turns.release()
    finally:
        for holder in holders:
            holder.kill()
            holder.wait(timeout=30)
        turns.close()
