# Preprocessing: reorient, resample, normalise intensities, crop around chosen structures.
# Runs on the subjects that passed QC (the qc_summary checkpoint decides which).


rule preprocess_subject:
    """One subject's image and mask in the canonical orientation, spacing, intensity scale and crop."""
    input:
        unpack(raw_inputs),
        qc=out("qc", "qc.tsv", subject="{subject}"),
    output:
        image=out("preprocess", "image.nii.gz", subject="{subject}"),
        mask=out("preprocess", "mask.nii.gz", subject="{subject}"),
        record=out("preprocess", "preprocess.json", subject="{subject}"),
    params:
        settings=preprocess_settings,
        mask_geometry=mask_geometry,
    log:
        log_path("preprocess"),
    conda:
        "../envs/imaging.yaml"
    group:
        "preprocess"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    script:
        "../workflow_scripts/preprocess_subject.py"


rule preprocess_batch:
    """A batch of subjects' preprocessing records in one table; with its members, one cluster job per batch."""
    input:
        records=batch_files(out("preprocess", "preprocess.json", subject="{subject}"), "passed"),
    output:
        table=out("preprocess", "preprocess.tsv", batch="{batch}"),
    params:
        subjects=passed_batch,
    log:
        log_path("preprocess", "batch-{batch}"),
    conda:
        "../envs/stats.yaml"
    group:
        "preprocess"  # one cluster job per batch of subjects (profiles/slurm)
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/preprocess_batch.py"


rule preprocess_table:
    """Every subject's preprocessing (geometry before and after, intensity scaling, crop) in one table."""
    input:
        tables=batch_tables(out("preprocess", "preprocess.tsv", batch="{batch}"), "passed"),
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
