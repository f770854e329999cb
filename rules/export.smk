# One artifact per format and precision (and image size or device where the format needs it): a file, or
# a directory for formats whose artifact is several files (a compiler's caches). Formats without an export
# (torch eager) run from the state dict.


rule export:
    input:
        weights=rules.model.output.weights,
    output:
        artifact=paths.EXPORT,
        provenance=paths.provenance(paths.EXPORT),
    log:
        paths.EXPORT_LOG,
    wildcard_constraints:
        format="|".join(plan.formats_with_artifact("file")),
        device="cpu|cuda|any",
        ext=r"[a-z0-9]+",
    # Exports are not timed and never run on a timed CUDA job's cores; those that use the GPU hold it.
    threads: lambda wc: len(export_cores(wc))
    resources:
        gpu=lambda wc: 1 if wc.device == "cuda" else 0,
    params:
        versions=lambda wc: triggers.library_versions(wc.format),
        code=lambda wc: triggers.code_hash("export", wc.format),
        hardware=lambda wc: hardware.gpu_fingerprint() if wc.device == "cuda" else "any",
        batch_sizes=export_batch_sizes,
        options=lambda wc: plan.format_options(config, wc.format),  # exports serve every variant of a format
        cores=export_cores,
    script:
        "../scripts/export.py"


use rule export as export_directory with:
    output:
        artifact=directory(paths.EXPORT),
        provenance=paths.provenance(paths.EXPORT),
    wildcard_constraints:
        format="|".join(plan.formats_with_artifact("directory")),
        device="cpu|cuda|any",
        ext=r"[a-z0-9]+",
