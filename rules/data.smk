# Data: built-in synthetic phantoms and the per-dataset manifest.


rule synthesize_subject:
    """One synthetic subject: image, accurate and degraded masks, true landmarks, parameters."""
    wildcard_constraints:
        dataset=SYNTHETIC_PATTERN,
    output:
        image=out("synthetic", "image.nii.gz", subject="{subject}"),
        mask=out("synthetic", "mask.nii.gz", subject="{subject}"),
        poor_mask=out("synthetic", "poormask.nii.gz", subject="{subject}"),
        landmarks=out("synthetic", "landmarks.csv", subject="{subject}"),
        params=out("synthetic", "params.json", subject="{subject}"),
    params:
        spec=synthetic_spec,
        index=synthetic_index,
    log:
        log_path("synthetic"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=synthetic_mem_mb,
        runtime=20,
    script:
        "../workflow_scripts/synthesize_subject.py"


rule dataset_manifest:
    """The dataset's manifest as the workflow reads it (paths resolved, ids validated)."""
    input:
        source=manifest_source,
        synthetic=synthetic_outputs,
    output:
        manifest=out("data", "manifest.tsv"),
    params:
        dataset=manifest_cfg,
    log:
        log_path("data", "manifest"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/dataset_manifest.py"
