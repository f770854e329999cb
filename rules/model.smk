# The model (weights + provenance), the image set, and the reference logits used by the accuracy check.


rule model:
    input:
        weights_file,
    output:
        weights=paths.MODEL_WEIGHTS,
        provenance=paths.MODEL_PROVENANCE,
    log:
        paths.MODEL_LOG,
    params:
        weights=config["model"]["weights"],
        sha256=config["model"]["sha256"],
        seed=config["model"]["seed"],
        versions=versions.versions(["torch", "torchvision"]),
        code=triggers.code_hash("model"),
    script:
        "../scripts/model.py"


rule images:
    output:
        manifest=paths.MANIFEST,
    log:
        paths.IMAGES_LOG,
    params:
        folder=config["data"]["images"],
        folder_state=triggers.images_fingerprint(config["data"]["images"]),
        n_images=config["data"]["num_images"],
        seed=config["data"]["seed"],
        versions=versions.versions(["torchvision", "pillow", "matplotlib"]),
        code=triggers.code_hash("images"),
    script:
        "../scripts/images.py"


rule reference:
    input:
        weights=rules.model.output.weights,
        manifest=rules.images.output.manifest,
    output:
        paths.REFERENCE,
    log:
        paths.REFERENCE_LOG,
    threads: len(CORES["cpu"])
    params:
        n_images=config["data"]["accuracy_images"],
        versions=versions.versions(["torch", "torchvision"]),
        code=triggers.code_hash("reference"),
        cores=CORES["cpu"],
    script:
        "../scripts/reference.py"
