"""The measurement's entry point for tools (tools/ablation.py, tools/perf_check.py): one measuring process of the
study's harness over configurations in the order given, forked exactly as a benchmark job forks it and watched by
the job process's monitors; what it read of each configuration. Tools call this module, not the measurement's
internals (a test holds them to it). Call it, as a job does, from a process that has run no torch op: the measuring
process is forked, and a child forked after torch's CPU thread pool ran can hang in its first op (seen in a test).

    from fmtbench.measure import probe
    request = probe.Request(format="torch", device="cuda", precision="fp16", image_size=224, weights="w.pt",
                            measurement=settings, batch_sizes=(32, 64))
    measured = probe.one_process(request, [("dummy", 32), ("dummy", 64)])
    measured.readings[("dummy", 64)].timing.summary.median   # ms
"""
from __future__ import annotations

from dataclasses import dataclass

from fmtbench import backends
from fmtbench.measure.messages import Reading
from fmtbench.measure.request import Request
from fmtbench.measure.schedule import Scheduler, order

__all__ = ["Measured", "Reading", "Request", "library_handles", "one_process", "order"]


@dataclass(frozen=True)
class Measured:
    """What one measuring process read: each configuration it measured, why the others were not."""
    readings: dict[tuple[str, int], Reading]   # (loader, batch size) -> its reading
    failures: dict[tuple[str, int], str]       # (loader, batch size) -> "status: reason"
    seconds: float | None                      # the process's life, from its fork to its exit
    error: str | None                          # why the format did not run at all (unavailable here)


def one_process(request: Request, configurations: list[tuple[str, int]], checks: bool = True) -> Measured:
    """One measuring process over `configurations` (loader, batch size), in this order, as a benchmark job runs
    it (`checks` off: no accuracy check and no long back-to-back phase). `order(configurations, index, count)` is
    the order a study's `index`-th of `count` processes takes them in."""
    scheduler = Scheduler(request, backends.spec(request.backend))
    try:
        unavailable = scheduler.run_in_order(configurations, checks=checks)
    finally:
        scheduler.turns.close()  # a real loader's shared turn on the host goes back with its process
    readings, failures, seconds = {}, {}, None
    for key in configurations:
        gathered = scheduler.gathered[key]
        if gathered.readings:
            readings[key] = gathered.readings[-1]
            seconds = gathered.entries[-1].stages_s.get("exited")
        elif gathered.failure is not None:
            failures[key] = f"{gathered.failure[0]}: {gathered.failure[1]}"
    return Measured(readings, failures, seconds, unavailable.reason if unavailable else None)


def library_handles(device: str, precision: str) -> None:
    """What a measuring process makes before its baseline, in this process: the CUDA context and the libraries'
    handles (a tiny convolution, batch norm and matmul on every stream the formats use), so a tool's readings start
    where a configuration's do."""
    from fmtbench.measure.measuring_process import _library_handles
    _library_handles(device, precision)
