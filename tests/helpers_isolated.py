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
    from fmtbench import runner
    figures = []
    for job in jobs:
        rows = runner.run_job(job)
        figures.append({row["config"]["batch_size"]: {p["position"]: p["memory"]["allocated_mb"]
                                                      for p in row["processes"]} | {"load": row["memory"]["load_mb"]}
                        for row in rows})
    return figures
