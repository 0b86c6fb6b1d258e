# Splits: patient-level k-fold / leave-one-out / fixed splits, written once for later rules.


checkpoint make_splits:
    """Patient-level train/validation/test splits of the subjects that passed QC."""
    input:
        subjects=out("qc", "subjects.tsv"),
    output:
        splits=out("splits", "splits.tsv"),
    log:
        log_path("splits", "splits"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        split=wf.splits.settings,
        fixed_base=wf.splits.base,
    script:
        "../workflow_scripts/make_splits.py"
