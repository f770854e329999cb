# fmtbench: ResNet-18 inference per deployment format.  Main target: `snakemake --cores 1 report`.
# Keep this file light: no torch import here (it costs ~2 s on every invocation).
import re
import sys
from pathlib import Path

import yaml

from snakemake.utils import min_version, validate

min_version("9.0")
sys.path.insert(0, workflow.basedir)

from fmtbench import hardware, study, versions


configfile: "config.yaml"


report: "rules/report/workflow.rst"


# `--config` lists and mappings arrive as strings (YAML BaseLoader): give them the schema's types.
config.update(
    study.coerce(
        config,
        yaml.safe_load(
            Path(workflow.basedir, "schemas/config.schema.yaml").read_text()
        ),
    )
)
validate(config, "schemas/config.schema.yaml")  # also fills in the schema's defaults
study.validate(config)

HOST = study.host(config)
JOBS = study.jobs(config)
# Which cores each kind of job runs on (recorded in every JSON): CPU rows beside, not on, a timed GPU job.
CORES = hardware.core_plan(study.has_cuda_rows(config), config["cpu_threads"])


wildcard_constraints:
    host=re.escape(HOST),
    device="cpu|cuda",
    precision="fp16|fp32",
    size=r"\d+|any",
    format="|".join(study.row_names(config)),


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/export.smk"
include: "rules/benchmark.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
