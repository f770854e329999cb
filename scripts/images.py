"""Snakemake `images` rule: the image set (a user's folder or a generated one) and its manifest."""
from pathlib import Path

from fmtbench import images, lifeline, logs
from fmtbench.atomic import write_json

sm = snakemake  # noqa: F821 - set by Snakemake's script preamble


def main():
    logs.setup(sm.log)
    params = sm.params
    manifest_path = Path(sm.output.manifest)
    skipped = []
    if params.folder:
        (paths, skipped), source = images.scan_folder(params.folder), f"folder {params.folder}"
    else:
        paths = images.generate(manifest_path.parent / "generated", params.n_images, params.seed)
        source = (f"generated: {params.n_images} seeded crops/flips (seed {params.seed}) of "
                  + ", ".join(p.name for p in images.packaged_photographs()))
    write_json(manifest_path, images.manifest(paths, source, skipped))


if __name__ == "__main__":
    lifeline.hold()  # ends with the Snakemake process that started it
    logs.run(main, f"rule {sm.rule}")
