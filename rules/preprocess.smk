# Preprocessing: reorient, resample, normalise intensities, crop around chosen structures; the poor
# labels (hip paper) moved onto the same grid. Runs on the subjects that passed QC (the qc_summary
# checkpoint decides which).


rule preprocess_subject:
    """One subject's image and mask in the canonical orientation, spacing, intensity scale and crop."""
    input:
        unpack(wf.qc.raw_inputs),
        qc=out("qc", "qc.tsv", subject="{subject}"),
    output:
        image=out("preprocess", "image.nii.gz", subject="{subject}"),
        mask=out("preprocess", "mask.nii.gz", subject="{subject}"),
        record=out("preprocess", "preprocess.json", subject="{subject}"),
    log:
        log_path("preprocess"),
    group:
        "preprocess"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    params:
        settings=wf.preprocess.settings,
        mask_geometry=wf.preprocess.mask_geometry,
    script:
        "../workflow_scripts/preprocess_subject.py"


rule preprocess_poor_mask:
    """A subject's poor (degraded) mask on its preprocessed grid, for pre-training (hip paper)."""
    input:
        poor=wf.preprocess.poor_mask,
        image=out("preprocess", "image.nii.gz", subject="{subject}"),
        raw_image=wf.preprocess.raw_image,
    output:
        mask=out("preprocess", "poormask.nii.gz", subject="{subject}"),
    log:
        log_path("preprocess", "{subject}_poor"),
    group:
        "preprocess"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    params:
        labels=wf.preprocess.labels,
        mask_geometry=wf.preprocess.mask_geometry,
    script:
        "../workflow_scripts/preprocess_poor_mask.py"


rule preprocess_batch:
    """A batch of subjects' preprocessing records in one table; with its members, one cluster job per batch."""
    input:
        records=wf.batches.files(out("preprocess", "preprocess.json", subject="{subject}"), "passed"),
    output:
        table=out("preprocess", "preprocess.tsv", batch="{batch}"),
    log:
        log_path("preprocess", "batch-{batch}"),
    group:
        "preprocess"  # one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        subjects=wf.batches.passed,
    script:
        "../workflow_scripts/preprocess_batch.py"


rule preprocess_table:
    """Every subject's preprocessing (geometry before and after, intensity scaling, crop) in one table."""
    input:
        tables=wf.batches.tables_of(out("preprocess", "preprocess.tsv", batch="{batch}"), "passed"),
    output:
        table=out("preprocess", "preprocess.tsv"),
    log:
        log_path("preprocess", "table"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/preprocess_table.py"
