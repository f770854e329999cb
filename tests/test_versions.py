"""Library versions: what the DAG compares to rerun a format after an upgrade."""
from importlib import metadata

import pytest

from fmtbench import versions


@pytest.fixture
def installed(monkeypatch):
    """Pretend these distributions (name -> version) are the installed ones."""
    packages: dict[str, str] = {}

    def version(dist):
        if dist not in packages:
            raise metadata.PackageNotFoundError(dist)
        return packages[dist]
    monkeypatch.setattr(versions.metadata, "version", version)
    return packages


@pytest.mark.parametrize("upgraded", ["onnxruntime", "onnxruntime-gpu"])
def test_upgrading_either_onnxruntime_distribution_changes_the_version_the_dag_sees(installed, upgraded):
    installed.update({"onnxruntime": "1.31.1", "onnxruntime-gpu": "1.31.1"})
    before = versions.version("onnxruntime")
    installed[upgraded] = "1.32.0"
    after = versions.version("onnxruntime")
    assert before != after and f"{upgraded} 1.32.0" in after


@pytest.mark.parametrize("dist", ["onnxruntime", "onnxruntime-gpu"])
def test_one_installed_distribution_gives_its_plain_version(installed, dist):
    installed[dist] = "1.31.1"
    assert versions.version("onnxruntime") == "1.31.1"
    installed[dist] = "1.32.0"
    assert versions.version("onnxruntime") == "1.32.0"


def test_overrides_pretend_an_upgrade_and_a_missing_library_is_named(installed, monkeypatch):
    installed["torch"] = "2.14.1"
    monkeypatch.setenv("FMTBENCH_VERSION_OVERRIDES", "torch=2.15.0, onnxruntime=9.9")
    assert versions.versions(["torch", "onnxruntime", "tensorrt"]) == {
        "torch": "2.15.0", "onnxruntime": "9.9", "tensorrt": versions.NOT_INSTALLED}
