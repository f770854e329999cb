"""Where a study keeps its files, relative to its working directory: each pattern once, for the rules, the
integrity checks, the scripts and the tests.

The patterns use `str.format` fields that are also the rules' wildcards. Which files a given config has
(its jobs' results, the exports its rows need) is `plan`'s view; this module only says where they go.
"""
from __future__ import annotations

import glob
from pathlib import Path

ARTIFACTS = "artifacts"
ANY = "any"  # the device or image-size field of an export that does not depend on it

MODEL_WEIGHTS = f"{ARTIFACTS}/model/resnet18.pt"
MODEL_PROVENANCE = f"{ARTIFACTS}/model/provenance.json"
MANIFEST = f"{ARTIFACTS}/images/manifest.json"
REFERENCE = f"{ARTIFACTS}/reference/{{size}}.pt"
EXPORTS = f"{ARTIFACTS}/exports"
EXPORT = f"{EXPORTS}/{{format}}/{{precision}}-{{device}}-{{size}}.{{ext}}"
RESULTS_DIR = f"{ARTIFACTS}/results"
RESULTS = f"{RESULTS_DIR}/{{host}}/{{format}}/{{device}}-{{precision}}/{{size}}/{{loader}}-bs{{batch}}.json"
# What an export says about its artifact (status, size, sha256, details), beside it.
PROVENANCE = ".provenance.json"
CACHE = f"{ARTIFACTS}/cache"  # compiler caches shared across exports (TensorRT's timing cache)
GPU_LOCKS = f"{ARTIFACTS}/locks/gpu"

LOGS = f"{ARTIFACTS}/logs"
MODEL_LOG = f"{LOGS}/model.log"
IMAGES_LOG = f"{LOGS}/images.log"
REFERENCE_LOG = f"{LOGS}/reference/{{size}}.log"
EXPORT_LOG = f"{LOGS}/export/{{format}}-{{precision}}-{{device}}-{{size}}.{{ext}}.log"
BENCHMARK_LOG = f"{LOGS}/benchmark/{{host}}/{{format}}-{{device}}-{{precision}}.log"
REPORT_LOG = f"{LOGS}/report.log"

REPORT_DIR = "report"
REPORT = f"{REPORT_DIR}/report.md"
PLOTS = f"{REPORT_DIR}/plots"
TABLES = f"{REPORT_DIR}/tables"
RESULTS_CSV = f"{REPORT_DIR}/results.csv"
REPORT_FRONT = f"{REPORT_DIR}/front.rst"  # the front page of Snakemake's HTML report, from the rows
# Written last by the report rule; removed when a workspace lacks files it had (integrity.missing).
REPORT_COMPLETE = f"{REPORT_DIR}/.complete"


def provenance(artifact: str | Path) -> str:
    """The provenance record of an export."""
    return str(artifact) + PROVENANCE


def result_key(path: str | Path) -> tuple[str, int]:
    """(loader, batch size) of a result path (its file name is RESULTS' last part)."""
    loader, batch = Path(path).stem.split("-bs")
    return loader, int(batch)


def result_size(path: str | Path) -> int:
    """The image size of a result path (its folder is RESULTS' {size} part)."""
    return int(Path(path).parent.name)


def foreign_results(host_tag: str) -> list[str]:
    """Result JSONs copied from other machines under RESULTS_DIR."""
    pattern = RESULTS.format(host="*", format="*", device="*", precision="*", size="*", loader="*", batch="*")
    return sorted(path for path in glob.glob(pattern) if not path.startswith(f"{RESULTS_DIR}/{host_tag}/"))
