# One export artifact per format and precision (and image size or device where the format needs it).
# Formats without an export (torch eager) run from the state dict.

EXPORT_FORMATS = [name for name in study.available_formats() if study.spec(name).export_ext]


rule export:
    input:
        weights=rules.model.output.weights,
    output:
        artifact="artifacts/exports/{format}/{precision}-{device}-{size}.{ext}",
        provenance="artifacts/exports/{format}/{precision}-{device}-{size}.{ext}.provenance.json",
    wildcard_constraints:
        format="|".join(EXPORT_FORMATS),
        device="cpu|cuda|any",
        ext=r"[a-z0-9]+",
    params:
        versions=lambda wc: study.library_versions(wc.format),
        code=lambda wc: study.code_hash("export", wc.format),
        hardware=lambda wc: hardware.gpu_fingerprint() if wc.device == "cuda" else "any",
        batch_sizes=sorted(config["batch_sizes"]),
        options=lambda wc: study.format_options(config, wc.format),  # exports serve every variant of a format
    # Exports are not timed: a few threads each lets them run side by side (all cores each serialised
    # the 22 exports of the default grid: ~7 minutes on the H100 host).
    threads: min(2, CPU_THREADS)
    resources:
        gpu=lambda wc: 1 if wc.device == "cuda" else 0,  # compilers autotune on the GPU: never two at once
    log:
        "artifacts/logs/export/{format}-{precision}-{device}-{size}.{ext}.log",
    script:
        "../scripts/export.py"
