"""fmtbench: ResNet-18 inference measured per deployment format.

One word per thing (the code, its comments and the docs use them so):

- **study**: what one config asks for (`config.yaml` or `--configfile`), on one machine or several.
- **format**: a way to deploy the model (torch, onnx, inductor, ...; `fmtbench.backends`), or a **variant** of one
  (a named format with other options); both are a row's `format`.
- **export**: what the export stage writes for a format that needs one (a file, or a directory of a compiler's
  caches, `artifacts/exports/`), with its provenance beside it; its checks before use are `measure.export_check`,
  a row's record of it `results.ExportRecord`, a format's way of storing it `backends.base.ExportLayout`. The word
  "artifact" is left in names the results, the format contract or users' files fix (a row's `artifact` field,
  `FormatSpec.artifact`, `LoadRequest.artifact`, the workspace's `artifacts/`) and in the field that carries the
  export's path to them (`Request.artifact`, the export rule's `artifact` output): each names the export.
- **job**: one Snakemake benchmark job: one (format, device, precision), every image size (`workflow.plan.Job`,
  `measure.job.run`). A **request** is one image size of a job (`measure.request.Request`, `job.run_request`).
- **configuration**: one image size × batch size × loader of a request; each gets one row.
- **measuring process**: a process forked from the job process that loads the model once and measures a group of
  the request's configurations (`measure.measuring_process`); the **job process** forks them and watches them
  (`measure.monitors`).
- **reading**: what one measuring process measured of one configuration (`measure.messages.Reading`), with its parts
  (`row_parts`: memory, GPU, loader readings) and its timing (`stats.ProcessTiming`).
- **row**: the result of one configuration, assembled from its readings (`results.Row`, one JSON file); only a
  `results.Row` (or the report's line of one) is a row: what the job gathers for a configuration before it is one
  is `measure.schedule.Gathered`.
- **scope**: what a row times: the model alone (the dummy loader) or end to end (a real loader)
  (`scope.Scope`, whose values are the words rows record: `latency`, `under_load`).
- **scenario**: how a configuration of a scope is timed (`measure.scenarios`).
- **turn**: the host's CPUs taken in turns through one lock file per machine (`host_turns`): a CPU row's measuring
  process on an exclusive turn, the heavy host work that would disturb it (a CUDA job's real-loader processes, an
  export, the reference logits) on shared ones.

The package's floors: `workflow/` holds the Snakefile's helpers (the config checked, the plan, triggers, integrity,
locks, cores, GPU claims); `measure/` the measurement (its clocks and monitors, the measuring process, a job's rows;
`measure.probe` is the tools' entry point); `report/` the report; `backends/` the formats; `data/` the loaders;
below them the words every layer uses (`paths`, `results`, `row_parts`, `stats`, `settings`, ...).
`tests/test_layers.py` lists the floors: no module imports one on its floor or above.

Modules that the Snakefile imports (workflow.plan, workflow.hardware, backends.base and each backend's SPEC) must not
import torch at module level: it costs ~2 s on every Snakemake invocation.
"""
