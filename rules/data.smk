# Data: built-in synthetic phantoms and the per-dataset manifest.


rule synthesize_subject:
    """One synthetic subject: image, accurate and degraded masks, true landmarks, parameters."""
    output:
        image=out("synthetic", "image.nii.gz", subject="{subject}"),
        mask=out("synthetic", "mask.nii.gz", subject="{subject}"),
        poor_mask=out("synthetic", "poormask.nii.gz", subject="{subject}"),
        landmarks=out("synthetic", "landmarks.csv", subject="{subject}"),
        params=out("synthetic", "params.json", subject="{subject}"),
    log:
        log_path("synthetic"),
    wildcard_constraints:
        dataset=wf.plan.synthetic_pattern(),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=wf.data.synthetic_mem_mb,
        runtime=20,
    params:
        spec=wf.data.synthetic_spec,
        index=wf.data.synthetic_index,
    script:
        "../workflow_scripts/synthesize_subject.py"


rule dataset_manifest:
    """The dataset's manifest as the workflow reads it (paths resolved, ids validated)."""
    input:
        source=wf.data.manifest_source,
        synthetic=wf.data.synthetic_outputs,
    output:
        manifest=out("data", "manifest.tsv"),
    log:
        log_path("data", "manifest"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        dataset=wf.data.manifest_settings,
    script:
        "../workflow_scripts/dataset_manifest.py"
