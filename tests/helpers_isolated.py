"""Functions that tests run through fmtbench.isolation (importable by a fresh interpreter)."""
import os
import time

from fmtbench import isolation


def double(x):
    return 2 * x


def missing_library():
    raise ModuleNotFoundError("No module named 'onnxscript'")


def dies_during_load():
    isolation.mark("compile")
    isolation.mark("load (aoti_load_package)")
    os.kill(os.getpid(), 11)


def sleeps(seconds):
    isolation.mark("sleeping")
    time.sleep(seconds)


def load_inductor_from_cache(request):
    """A measuring process's view: the backend loads from the export's cache and runs an unseen batch size."""
    import torch

    from fmtbench import backends
    session = backends.get("inductor").load(request)
    batch = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    return session.logits(session.run(session.prepare(batch))), session.info["inductor_cache"]


def memory_of_jobs(jobs):
    """Each job run as a benchmark job process runs it (a fresh interpreter that has run no torch op): the memory
    figure of every process of every row, by batch size."""
    from fmtbench.measure import job
    figures = []
    for request in jobs:
        rows = job.run_request(request)
        figures.append({row["config"]["batch_size"]: {p["position"]: p["memory"]["allocated_mb"]
                                                      for p in row["processes"]} | {"load": row["memory"]["load_mb"]}
                        for row in rows})
    return figures


def rows_of_jobs(jobs):
    """Each job run as a benchmark job process runs it: per row (loader, batch) its status, reason and its first
    process's loader statistics."""
    from fmtbench.measure import job
    return [{(row["config"]["loader"], row["config"]["batch_size"]):
             (row["status"], row.get("reason"), (row.get("processes") or [{}])[0].get("loader"))
             for row in job.run_request(request)} for request in jobs]


def _identity():
    """The CUDA context made (as a measuring process makes it before its baseline) and what names the GPU."""
    import torch
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    properties = torch.cuda.get_device_properties(0)
    return {"uuid": str(getattr(properties, "uuid", "") or "")}


def allocates(megabytes):
    """A 'model' of `megabytes` loaded, then a configuration that peaks `megabytes` higher and frees it."""
    import torch

    from fmtbench.measure import memory
    isolation.mark("started")
    isolation.mark("baseline", **_identity())
    block = torch.empty(megabytes * 1024 * 1024, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    isolation.mark("loaded")
    isolation.mark("config_start")
    more = torch.empty(megabytes * 1024 * 1024, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    del more
    torch.cuda.synchronize()
    readings = isolation.mark("config_end")
    peaks = memory.torch_peaks()
    del block
    isolation.mark("closed")
    return readings, peaks


def loader_alone(manifest, batch, busy_cycles=0):
    """A GPU-decode source alone in its process: the device memory it holds once running (`busy_cycles`: a "model"
    that keeps the GPU busy that long after each batch, so the decoder runs ahead of it)."""
    import torch

    from fmtbench import data
    isolation.mark("started")
    isolation.mark("baseline", **_identity())
    isolation.mark("loaded")
    source = data.GpuDecodeSource(data.SourceRequest("cuda", 224, batch, 2, manifest,
                                                     data.InputFormat("float16", True)))
    isolation.mark("config_start")
    source.start()
    for _ in range(12):
        source.next()
        if busy_cycles:
            torch.cuda._sleep(busy_cycles)
    torch.cuda.synchronize()
    readings = isolation.mark("config_end")
    source.close()
    isolation.mark("closed")
    return readings["memory"].allocated_mb


def forked_with_monitor(name, *args):
    """`name`(*args) forked from this fresh interpreter under the job process's NVML monitor, as a benchmark job
    runs its measuring processes: (status, reason, value)."""
    from fmtbench.measure.monitors import DeviceMonitor
    outcome = isolation.run_forked(globals()[name], *args, timeout=300, on_mark=DeviceMonitor().on_mark)
    return outcome.status, outcome.reason, outcome.value


def writes_slowly(path):
    """An export's child caught mid-write: its `.part` file exists until the write ends, or the child unwinds."""
    from fmtbench.atomic import atomic_path
    with atomic_path(path) as tmp:
        tmp.write_text("half")
        isolation.mark("writing")
        time.sleep(120)
        tmp.write_text("whole")


def says_its_pid_and_sleeps(path):
    """A measuring child: says who it is, then measures for a long time."""
    with open(path, "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(120)
