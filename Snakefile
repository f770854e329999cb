# fmtbench: ResNet-18 inference per deployment format.  Main target: `snakemake --cores 1 report`.
# Keep this file light: no torch import here (it costs ~2 s on every invocation).
import os
import re
import sys
from pathlib import Path

from snakemake.io import is_flagged
from snakemake.logging import logger
from snakemake.utils import min_version

min_version("9.0")
sys.path.insert(0, workflow.basedir)

from fmtbench import lifeline, paths, settings, versions
from fmtbench.measure import contention
from fmtbench.workflow import (
    configcheck,
    gpus,
    hardware,
    integrity,
    invocation,
    locks,
    plan,
    triggers,
)

# Jobs are started by a shell that splits an unquoted interpreter path: refused in one line before anything else.
if workflow.is_main_process and invocation.interpreter_problem():
    raise plan.ConfigError(invocation.interpreter_problem())
# A dry run (-n) changes nothing on disk: what a real run would set aside is planned as remade instead.
DRY_RUN = invocation.dry_run()

# A config file of your own (`--configfile mine.yaml`) replaces config.yaml: Snakemake would merge it into
# config.yaml, keeping every key it does not name (config.yaml's CUDA formats, its CPU batch sizes). Several are
# merged in order (`--configfile config.yaml mine.yaml` changes only the keys mine.yaml names); `--config` keys
# merge into them. Each file as written, before use: a key written twice (YAML keeps the last silently), a TAB in the
# indentation, text that is not YAML, named with the file, line and key (`--configfile` ones are read by Snakemake
# first: it reports their syntax errors itself).
CONFIG_FILES = workflow.overwrite_configfiles or ["config.yaml"]
for path in CONFIG_FILES:
    if Path(path).is_file():
        configcheck.check_config_file(path)
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


if (
    workflow.overwrite_configfiles
    and workflow.is_main_process
    and Path("config.yaml").is_file()
    and Path("config.yaml").resolve() not in {Path(f).resolve() for f in CONFIG_FILES}
):
    logger.info(
        f"fmtbench: config from {', '.join(map(str, CONFIG_FILES))}; config.yaml is not read (a --configfile "
        "replaces it: give config.yaml first to change only some of its keys)"
    )


# The HTML report's front page: what this workspace's report says ran and found, once there is one.
FRONT_PAGE = "rules/report/workflow.rst"
if Path(paths.REPORT_FRONT).is_file():
    FRONT_PAGE = os.path.abspath(paths.REPORT_FRONT)


report: FRONT_PAGE


# `--config` strings typed, typos named, the schema (and its defaults), then what it cannot express.
plan.check(config, Path(workflow.basedir, "schemas/config.schema.yaml"))

HOST = plan.host(config)
JOBS = plan.jobs(config)
# Files a plain run must remake (damaged, or a transient failure to remeasure) are set aside first; only the
# main process does it (under SLURM every job parses this file again, while others write their outputs).
# Snakemake (>= 7.7) does not remake a missing file whose consumers are up to date. When files of a
# workspace are missing (deleted, or set aside here), the report's completion mark goes: the report then
# reruns, and Snakemake remakes what it needs that is missing, then exactly what depends on that.
OWN = plan.own_files(config, JOBS, HOST)
FOREIGN = paths.foreign_results(HOST)
# Rows this machine measured under another host_label (relabelled since): its earlier results, not another machine.
EARLIER = integrity.this_machines(FOREIGN)
FOREIGN = [
    path for path in FOREIGN if not any(path in files for files in EARLIER.values())
]
if workflow.is_main_process:
    lifeline.name_owner()  # its jobs end with it, even when it is killed (fmtbench/lifeline.py)
    if not DRY_RUN:
        # The lock of a Snakemake process that was killed, left in .snakemake/locks (fmtbench/workflow/locks.py).
        STALE = locks.release_stale()
        if STALE:
            logger.warning(STALE)
        locks.expect()  # a lock this process leaves, killed before `onstart`, is known as its own
    for label, files in EARLIER.items():
        logger.warning(
            f"fmtbench: {paths.RESULTS_DIR}/{label}/: {len(files)} result(s) this machine measured under "
            f"host_label {label!r} ({integrity.measured_on(files)}), before this run's label {HOST!r}: its "
            "earlier results, not another machine: left out of the report (move the folder out of "
            f"{paths.RESULTS_DIR}/ to keep it, or delete it)"
        )
    MOVED = integrity.repair(**OWN, dry=DRY_RUN)
    RETRY = integrity.weights_retry(
        paths.MODEL_PROVENANCE,
        paths.MODEL_WEIGHTS,
        config["model"]["weights"],
        dry=DRY_RUN,
    )
    MOVED += [RETRY] if RETRY else []
    for moved in MOVED:
        logger.warning(
            f"fmtbench: {moved.path}: {moved.why}; "
            + (
                f"a run sets it aside as {moved.to} and remakes it (not this dry run)"
                if DRY_RUN
                else f"set aside as {moved.to}, remade in this run"
            )
        )
    integrity.check_foreign(FOREIGN)
    if MOVED or integrity.missing(**OWN):
        if DRY_RUN:
            invocation.force([moved.path for moved in MOVED] + [paths.REPORT_COMPLETE])
        else:
            Path(paths.REPORT_COMPLETE).unlink(missing_ok=True)
# Which cores each kind of job runs on (recorded in every JSON): CPU rows beside, not on, a timed GPU job.
CORES = hardware.core_plan(plan.has_cuda_rows(config), config["cpu_threads"])


# A study on a busy machine times the other work too: say so at its start (only when there are jobs to run; each
# row also records what else ran while it was timed, and the report marks it §).
onstart:
    locks.claim()  # the lock files Snakemake just wrote are this process's
    busy = contention.study_start_warning(sorted(set().union(*CORES.values())))
    if busy:
        logger.warning(busy)


wildcard_constraints:
    host=re.escape(HOST),
    device="cpu|cuda",
    precision="fp16|fp32",
    size=r"\d+|any",
    format="|".join(plan.format_names(config)),


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/export.smk"
include: "rules/benchmark.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report.output,


# Outputs kept across their job (update(): the report's) whose backup a killed Snakemake left in .snakemake/backups:
# put back as Snakemake would have for a failed job, before it plans (it stopped on the backup left in the way).
if workflow.is_main_process and not DRY_RUN:
    UPDATED = [
        f for rule in workflow.rules for f in rule.output if is_flagged(f, "update")
    ]
    RESTORED = locks.restore_backups(UPDATED)
    if RESTORED:
        logger.warning(
            f"fmtbench: {', '.join(RESTORED)}: restored from the backup a killed Snakemake left in "
            ".snakemake/backups; the job that was making them runs again"
        )
