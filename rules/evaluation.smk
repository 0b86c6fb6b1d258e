# Evaluation: per-subject metrics of every method's predictions, collected per method, then tables with
# statistics, box plots, Dice along the field of view and the training-set-size study per dataset.
# `snakemake tables` regenerates all of it from the predictions on disk; evaluation settings reach only
# these rules.


rule evaluate_subject:
    """Every metric of one subject's prediction against its preprocessed reference mask."""
    input:
        prediction=wf.predictions.path,
        reference=out("preprocess", "mask.nii.gz", subject="{subject}"),
    output:
        metrics=entity_path("evaluation", "{dataset}", "metrics.csv", subject="{subject}", method="{method}"),
        confusion=entity_path("evaluation", "{dataset}", "confusion.csv", subject="{subject}", method="{method}"),
        fov=entity_path("evaluation", "{dataset}", "fov.csv", subject="{subject}", method="{method}"),
    log:
        log_path("evaluation", "{method}/{subject}"),
    group:
        "evaluation"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/imaging.yaml"
    threads: wf.evaluation.threads
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    params:
        settings=wf.evaluation.settings,
        labels=wf.evaluation.labels,
    script:
        "../workflow_scripts/evaluate_subject.py"


rule batch_metrics:
    """One method's metrics of a batch of subjects (with each subject's test fold), summed confusion and per-slice
    Dice; with its members, one cluster job per batch."""
    input:
        metrics=wf.batches.files(
            entity_path("evaluation", "{dataset}", "metrics.csv", subject="{subject}", method="{method}"), "evaluated"
        ),
        confusions=wf.batches.files(
            entity_path("evaluation", "{dataset}", "confusion.csv", subject="{subject}", method="{method}"),
            "evaluated",
        ),
        fovs=wf.batches.files(
            entity_path("evaluation", "{dataset}", "fov.csv", subject="{subject}", method="{method}"), "evaluated"
        ),
        splits=out("splits", "splits.tsv"),
    output:
        table=entity_path("evaluation", "{dataset}", "metrics.csv", method="{method}", batch="{batch}"),
        confusion=entity_path("evaluation", "{dataset}", "confusion.csv", method="{method}", batch="{batch}"),
        fov=entity_path("evaluation", "{dataset}", "fov.csv", method="{method}", batch="{batch}"),
    log:
        log_path("evaluation", "{method}/batch-{batch}"),
    group:
        "evaluation"  # one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        subjects=wf.batches.evaluated,
    script:
        "../workflow_scripts/batch_metrics.py"


rule collect_metrics:
    """One method's batches in one: per-subject metrics, summed confusion and per-slice Dice of every test subject."""
    input:
        tables=wf.batches.tables_of(
            entity_path("evaluation", "{dataset}", "metrics.csv", method="{method}", batch="{batch}"), "evaluated"
        ),
        confusions=wf.batches.tables_of(
            entity_path("evaluation", "{dataset}", "confusion.csv", method="{method}", batch="{batch}"), "evaluated"
        ),
        fovs=wf.batches.tables_of(
            entity_path("evaluation", "{dataset}", "fov.csv", method="{method}", batch="{batch}"), "evaluated"
        ),
    output:
        table=entity_path("evaluation", "{dataset}", "metrics.csv", method="{method}"),
        confusion=entity_path("evaluation", "{dataset}", "confusion.csv", method="{method}"),
        fov=entity_path("evaluation", "{dataset}", "fov.csv", method="{method}"),
    log:
        log_path("evaluation", "{method}/collect"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow_scripts/collect_metrics.py"


rule metric_table:
    """One metric: table (rows methods, columns structures) in Markdown, CSV and LaTeX, its statistics, box plot."""
    input:
        metrics=wf.evaluation.method_tables("metrics.csv"),
    output:
        markdown=entity_path("tables", "{dataset}", "table.md", metric="{metric}"),
        page=report(
            entity_path("tables", "{dataset}", "table.html", metric="{metric}"),
            category="Evaluation",
            caption="../report/metric_table.rst",
            labels={"dataset": "{dataset}", "table": "{metric}"},
        ),
        csv=entity_path("tables", "{dataset}", "table.csv", metric="{metric}"),
        latex=entity_path("tables", "{dataset}", "table.tex", metric="{metric}"),
        stats=entity_path("tables", "{dataset}", "stats.csv", metric="{metric}"),
        box=report(
            entity_path("plots", "{dataset}", "boxplot.png", metric="{metric}"),
            category="Evaluation",
            caption="../report/boxplot.rst",
            labels={"dataset": "{dataset}", "plot": "{metric}"},
        ),
        box_svg=entity_path("plots", "{dataset}", "boxplot.svg", metric="{metric}"),
    log:
        log_path("tables", "{metric}"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=wf.evaluation.table_settings,
    script:
        "../workflow_scripts/metric_table.py"


rule fov_curve:
    """Dice against the normalised field of view, per method and structure: table and plot."""
    input:
        fovs=wf.evaluation.method_tables("fov.csv"),
    output:
        curve=entity_path("tables", "{dataset}", "fov.csv"),
        png=report(
            entity_path("plots", "{dataset}", "fov.png"),
            category="Evaluation",
            caption="../report/fov.rst",
            labels={"dataset": "{dataset}", "plot": "field of view"},
        ),
        svg=entity_path("plots", "{dataset}", "fov.svg"),
    log:
        log_path("tables", "fov"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=wf.evaluation.table_settings,
    script:
        "../workflow_scripts/fov_curve.py"


rule table_summary:
    """All Markdown tables of a dataset in one file."""
    input:
        tables=wf.evaluation.metric_tables,
    output:
        summary=entity_path("tables", "{dataset}", "tables.md"),
    log:
        log_path("tables", "summary"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../workflow_scripts/table_summary.py"


rule training_size_study:
    """Power-law fit of one metric against the number of training subjects (evaluation.training_size)."""
    input:
        metrics=wf.evaluation.study_inputs,
    output:
        fits=entity_path("tables", "{dataset}", "powerlaw.csv", study="trainingsize", metric="{metric}"),
        png=report(
            entity_path("plots", "{dataset}", "powerlaw.png", study="trainingsize", metric="{metric}"),
            category="Evaluation",
            caption="../report/powerlaw.rst",
            labels={"dataset": "{dataset}", "plot": "training size {metric}"},
        ),
        svg=entity_path("plots", "{dataset}", "powerlaw.svg", study="trainingsize", metric="{metric}"),
    log:
        log_path("tables", "trainingsize_{metric}"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sizes=wf.evaluation.study_sizes,
    script:
        "../workflow_scripts/training_size_study.py"
