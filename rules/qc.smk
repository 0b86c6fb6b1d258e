# Quality control: one job per subject records every check; a checkpoint gathers the records
# and decides who goes on. A failing subject is excluded downstream and the run goes on
# (qc.fatal: true stops the run instead).


rule qc_subject:
    """Checks one subject's image and mask (readable, geometry, labels, structures, spacing, intensities)."""
    input:
        unpack(wf.qc.raw_inputs),
    output:
        records=out("qc", "qc.tsv", subject="{subject}"),
    log:
        log_path("qc"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=10,
    params:
        paths=wf.qc.raw_paths,
        settings=wf.qc.settings,
        fatal=wf.qc.fatal,
    script:
        "../workflow_scripts/qc_subject.py"


checkpoint qc_summary:
    """The QC table of a dataset (subject, check, status, detail) and who passed."""
    input:
        records=wf.qc.records,
        manifest=out("data", "manifest.tsv"),
    output:
        table=out("qc", "qc_table.tsv"),
        subjects=out("qc", "subjects.tsv"),
    log:
        log_path("qc", "summary"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/qc_summary.py"
