"""The workflow's helpers: what the Snakefile and its rules use to plan and keep a study, torch-free (the Snakefile
imports them on every invocation): the config checked (`configcheck`) and planned into jobs and files (`plan`), what
reruns a job besides its inputs (`triggers`), damaged or foreign files (`integrity`), a killed Snakemake's lock
(`locks`), the machine's cores (`hardware`), GPU claims (`gpus`) and how Snakemake was invoked (`invocation`).

Where files go (`fmtbench.paths`), library versions (`fmtbench.versions`) and a process that ends with the one that
started it (`fmtbench.lifeline`) are the Snakefile's too, but the formats and the measuring processes use them as
well: they stay below the formats, so that this package, which plans the formats, is not imported by them."""
