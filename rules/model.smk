# The model (weights + provenance), the image set, and the reference logits used by the accuracy check.


def _weights_file(wildcards):
    weights = config["model"]["weights"]
    return [] if weights in ("imagenet", "random") else [weights]


rule model:
    input:
        _weights_file,
    output:
        weights="artifacts/model/resnet18.pt",
        provenance="artifacts/model/provenance.json",
    params:
        weights=config["model"]["weights"],
        sha256=config["model"].get("sha256"),
        seed=config["model"].get("seed", 0),
        versions=versions.versions(["torch", "torchvision"]),
        code=study.code_hash("model"),
    log:
        "artifacts/logs/model.log",
    script:
        "../scripts/fetch_model.py"


rule images:
    output:
        manifest="artifacts/images/manifest.json",
    params:
        folder=config["data"].get("images"),
        folder_state=study.images_fingerprint(config["data"].get("images")),
        n_images=config["data"].get("num_images", 256),
        seed=config["data"].get("seed", 0),
        versions=versions.versions(["torchvision", "pillow", "matplotlib"]),
        code=study.code_hash("images"),
    log:
        "artifacts/logs/images.log",
    script:
        "../scripts/make_images.py"


rule reference:
    input:
        weights=rules.model.output.weights,
        manifest=rules.images.output.manifest,
    output:
        "artifacts/reference/{size}.pt",
    params:
        n_images=config["data"].get("accuracy_images", 32),
        versions=versions.versions(["torch", "torchvision"]),
        code=study.code_hash("reference"),
    threads: CPU_THREADS
    log:
        "artifacts/logs/reference/{size}.log",
    script:
        "../scripts/reference.py"
