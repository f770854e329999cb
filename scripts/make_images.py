"""Snakemake `images` rule: the image set (a user's folder or a generated one) and its manifest."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir + "/..")  # noqa: F821
from fmtbench import images, logs  # noqa: E402
from fmtbench.atomic import write_json  # noqa: E402



def main():
    logs.setup(snakemake.log)  # noqa: F821
    params = snakemake.params  # noqa: F821
    manifest_path = Path(snakemake.output.manifest)  # noqa: F821
    if params.folder:
        paths, source = images.find_images(params.folder), f"folder {params.folder}"
    else:
        paths = images.generate(manifest_path.parent / "generated", params.n_images, params.seed)
        source = (f"generated: {params.n_images} seeded crops/flips (seed {params.seed}) of "
                  + ", ".join(p.name for p in images.packaged_photographs()))
    write_json(manifest_path, images.manifest(paths, source))


# A guard: multiprocessing's spawn re-imports this file in its children, which must not rerun the job.
if __name__ == "__main__":
    main()
