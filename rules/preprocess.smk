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
        "preprocess"  # one cluster job per subject chain (profiles/slurm)
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    script:
        "../workflow_scripts/preprocess_subject.py"
