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
