"""The measurement: a benchmark job's rows, from its requests to its result files. One word for each thing:

- a **job** is one Snakemake benchmark job: every image size of one (format, device, precision) (`job`);
- a **request** is what one image size of a job measures: its configurations (loader × batch size), the model,
  the export and how to measure (`request.Request`, its settings in `fmtbench.settings.Settings`);
- a **process** is one measuring process, forked from the job process: it loads the model once and measures a
  group of the request's configurations (`measuring_process`), marking each stage (`messages.Mark`) and reporting each
  configuration as one typed `messages.Reading`; the job process's monitors read the device and the machine from
  outside (`monitors`), the scheduler decides how many processes and in which order (`schedule`);
- a **scenario** is how a configuration is timed: latency, back to back, under load (`scenarios`);
- a **row** is the result of one configuration (`results.Row`), assembled from its processes' readings
  (`assemble`) and written as one JSON (`row_files`).

The flow runs one way: job → request → processes → readings → rows → files.
"""
