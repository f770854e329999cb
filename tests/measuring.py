"""A tiny CPU request for the measurement's tests (torch eager, 32², a few calls per configuration)."""
from dataclasses import asdict

from fmtbench.measure.request import Request
from fmtbench.settings import Harness, Settings


def cpu_request(weights, tmp_path, batches=(2, 8), loaders=("dummy",), processes=1, max_processes=1,
                **overrides) -> Request:
    measurement = Settings(warmup_iters=2, warmup_seconds=0, min_iters=5, min_seconds=0, max_seconds=1, target_ci=0,
                           throughput_seconds=0, energy_seconds=0, processes=processes, max_processes=max_processes,
                           unstable_spread=0.05, noisy_iqr_ratio=0.1, host_bound_share=0.9, harness=asdict(Harness()))
    outputs = {(loader, batch): str(tmp_path / f"{loader}-bs{batch}.json") for batch in batches for loader in loaders}
    return Request(format="torch", device="cpu", precision="fp32", image_size=32, host="test",
                   batch_sizes=tuple(batches), loaders=tuple(loaders), weights=str(weights), measurement=measurement,
                   threads=1, options={"fp32_math": "strict", "cuda_graph": False, "autocast": False},
                   outputs=outputs, **overrides)
