# Report: what `snakemake --report report.html` gathers beyond the stages' own tables and figures - the run's
# provenance (config, package versions, commit), each dataset's QC page, an overlay gallery per scored method
# (worst and best cases first) and the speed/accuracy table of every method that ran (docs/report.md).


rule run_provenance:
    """The configuration, package versions, code commit and machine the run was made with."""
    output:
        page=report(
            "results/report/provenance.html",
            category="About this run",
            caption="../report/provenance.rst",
        ),
    log:
        "logs/report/provenance.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        config=wf.report.config,
    script:
        "../workflow_scripts/run_provenance.py"


rule qc_page:
    """A dataset's quality checks: counts, excluded subjects with their failures, fixes, unusual checks."""
    input:
        checks=out("qc", "qc_table.tsv"),
        subjects=out("qc", "subjects.tsv"),
    output:
        page=report(
            out("report", "qc.html"),
            category="Quality control",
            caption="../report/qc.rst",
            labels={"dataset": "{dataset}", "page": "quality checks"},
        ),
    log:
        log_path("report", "qc"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../workflow_scripts/qc_page.py"


rule overlay_gallery:
    """A scored method's test subjects: slices in each plane, prediction filled, reference outlined."""
    input:
        unpack(wf.report.gallery_inputs),
    output:
        gallery=report(
            directory(out("report", "gallery", method="{method}")),
            patterns=["{position}_sub-{subject}.png"],
            category="Overlays",
            subcategory="{dataset}",
            caption="../report/gallery.rst",
            labels={"method": "{method}", "case": "{position}", "subject": "{subject}"},
        ),
    log:
        log_path("report", "{method}_gallery"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=one_volume_mem_mb,
        runtime=20,
    params:
        settings=wf.report.gallery_settings,
        subjects=wf.report.gallery_subjects,
    script:
        "../workflow_scripts/overlay_gallery.py"


rule speed_accuracy:
    """Dice, training time and memory, inference time and memory, and device of every method that ran."""
    input:
        wf.report.speed_inputs,
    output:
        table="results/tables/speed_accuracy.csv",
        page=report(
            "results/report/speed_accuracy.html",
            category="Speed and accuracy",
            caption="../report/speed_accuracy.rst",
        ),
    log:
        "logs/report/speed_accuracy.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        methods=wf.report.speed_methods,
    script:
        "../workflow_scripts/speed_accuracy.py"
