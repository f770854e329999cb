"""Before a request's first measuring process: what is known not to run here, the imports its children inherit,
and the settings its backend measures once per job (`tune`, in a process of its own)."""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, replace

from fmtbench import backends, env, isolation
from fmtbench.measure import measuring_process
from fmtbench.measure.export_check import Export
from fmtbench.measure.request import Request
from fmtbench.workflow import hardware


@dataclass(frozen=True)
class Prepared:
    """A request ready to measure (its backend's tuned options merged in), or why none of its rows can be."""
    request: Request
    environment: dict
    backend: dict                               # what the rows say of their format (label, tuned settings)
    failure: isolation.Outcome | None = None    # every row gets this outcome: nothing is measured


def static_unavailability(request: Request, provenance: dict | None) -> tuple[str, str] | None:
    """Reasons known before any child runs: no GPU, an export that is a marker, a library missing."""
    if request.device == "cuda" and hardware.gpu_fingerprint() == hardware.NO_CUDA:
        return "unavailable", "no CUDA device on this machine (no NVIDIA GPU visible)"
    if provenance and provenance["status"] != "ok":
        return provenance["status"], f"export {provenance['status']}: {provenance['reason']}"
    reason = backends.get(request.backend).probe(request.device)
    if reason:
        return "unavailable", reason
    return None


def _preload(request: Request) -> None:
    """Imports only (no CUDA, no torch ops): the forked children inherit them."""
    for module in backends.spec(request.backend).imports:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the child reports the format unavailable with the import's own message


def _label(request: Request) -> dict:
    """What the row's format is, for readers: the backend's label with the options that differ from its own."""
    spec = backends.spec(request.backend)
    changed = {key: value for key, value in request.options.items() if spec.options.get(key) != value}
    text = spec.label + (f" ({', '.join(f'{k}={v}' for k, v in sorted(changed.items()))})" if changed else "")
    return {"label": text, "backend": request.backend}


class Steps:
    """How long each step of a request's preparation took, for the job's log (where a job's start goes)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self._last
        self._last = now

    def text(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())


def prepare(request: Request, export: Export, steps: Steps | None = None) -> Prepared:
    """The request as its measuring processes will run it: unavailable here for a known reason (its rows say
    which), or imported, labelled and tuned (`steps`: each step's seconds)."""
    steps = steps or Steps()
    known = static_unavailability(request, export.written)
    steps.done("availability")
    if known:
        return Prepared(request, env.capture(request.device), {}, isolation.Outcome(*known))
    _preload(request)
    steps.done("imports")
    environment, backend = env.capture(request.device), _label(request)
    steps.done("environment")
    if not backends.get(request.backend).has_tune:
        return Prepared(request, environment, backend)
    tuned = isolation.run_forked(measuring_process.tune, request, timeout=request.measurement.stall_timeout(),
                                 spec=backends.spec(request.backend))
    steps.done("tuning (a forked process)")
    if tuned.status != "ok":
        return Prepared(request, environment, {}, tuned)
    if not tuned.value:
        return Prepared(request, environment, backend)
    return Prepared(replace(request, options={**request.options, **tuned.value}), environment,
                    {**backend, "tuned": tuned.value})
