import os
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers_workflow import study  # noqa: F401  (the tiny study: a fixture of each workflow test module)


def cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_configure(config):
    """Snakemake imports every installed executor plugin, and the SLURM plugin runs `scontrol show config` on
    import: on a machine with SLURM's tools but no cluster configured (CI installs them for the slurm tests) that
    call retries for ~10 s, in every Snakemake the tests start. A configuration naming a controller that is not
    there, with a 1 s TCP timeout, makes it fail at once. The slurm tests set SLURM_CONF to their own cluster."""
    if shutil.which("scontrol") and "SLURM_CONF" not in os.environ and not Path("/etc/slurm/slurm.conf").exists():
        conf = Path(tempfile.mkdtemp(prefix="fmtbench-no-slurm-")) / "slurm.conf"
        conf.write_text("ClusterName=none\nSlurmctldHost=localhost\nSlurmctldPort=1\nAuthType=auth/none\n"
                        "TCPTimeout=1\nMessageTimeout=1\nNodeName=localhost CPUs=1\n"
                        "PartitionName=none Nodes=localhost\n")
        os.environ["SLURM_CONF"] = str(conf)
    # The host's turns (fmtbench.host_turns) on a lock file of this test session: two sessions on one machine (a
    # helper's worktree beside this one) do not wait for each other's CPU rows.
    os.environ.setdefault("FMTBENCH_HOST_LOCK",
                          str(Path(tempfile.mkdtemp(prefix="fmtbench-turns-")) / "host.lock"))


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    has_cuda = cuda_available()
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _no_fingerprint_leaks(monkeypatch):
    for name in ("FMTBENCH_GPU_FINGERPRINT", "FMTBENCH_VERSION_OVERRIDES"):
        monkeypatch.delenv(name, raising=False)
    from fmtbench.workflow import hardware
    hardware.gpu_fingerprint.cache_clear()
    yield
    hardware.gpu_fingerprint.cache_clear()


@pytest.fixture
def default_stream():
    """ONNX Runtime's load makes a stream of its own current for the process (as in a measuring process): each GPU
    test (test_gpu_*.py use it) starts on torch's default stream again."""
    yield
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.set_stream(torch.cuda.default_stream())


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """A seeded random ResNet-18 state dict on disk, as the model rule writes it offline."""
    from fmtbench import model
    path = tmp_path_factory.mktemp("model") / "resnet18.pt"
    model.save(model.resolve("random", seed=0), path)
    return path
