import pytest


def cuda_available() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


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
    from fmtbench import hardware
    hardware.gpu_fingerprint.cache_clear()
    yield
    hardware.gpu_fingerprint.cache_clear()


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """A seeded random ResNet-18 state dict on disk, as the model rule writes it offline."""
    from fmtbench import model
    path = tmp_path_factory.mktemp("model") / "resnet18.pt"
    model.save(model.resolve("random", seed=0), path)
    return path
