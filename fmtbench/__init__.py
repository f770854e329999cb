"""fmtbench: ResNet-18 inference measured per deployment format.

Modules that the Snakefile imports (study, hardware, backends.base and each backend's SPEC) must not
import torch at module level: it costs ~2 s on every Snakemake invocation.
"""
