# Segment new scans: a trained method (of this run, or a bundle exported from another) applied to scans without
# labels, every fold averaged, mapped back onto each scan's own grid, with overlays, meshes and label-free QC;
# and the bundles `snakemake export_models` writes.


rule volume_reference:
    """The training masks' volumes per structure and the training images' median spacing (label-free QC)."""
    input:
        masks=wf.segment.volume_masks,
        images=wf.segment.volume_images,
    output:
        volumes=entity_path("models", "{dataset}", "volumes.json"),
    log:
        log_path("models", "volumes"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    params:
        labels=wf.evaluation.labels,
    script:
        "../workflow_scripts/volume_reference.py"


rule segment_scan:
    """One new scan segmented by every fold of the model, on its own grid, with overlay, meshes and QC row."""
    input:
        unpack(wf.segment.scan_inputs),
    output:
        dseg=entity_path("segment", "{dataset}", "dseg.nii.gz", subject="{subject}"),
        labels=entity_path("segment", "{dataset}", "dseg.tsv", subject="{subject}"),
        record=entity_path("segment", "{dataset}", "qc.json", subject="{subject}"),
        overlay=report(
            entity_path("segment", "{dataset}", "overlay.png", subject="{subject}"),
            category="Segmentations",
            caption="../report/overlay.rst",
            labels={"dataset": "{dataset}", "subject": "{subject}"},
        ),
        meshes=directory(entity_path("segment", "{dataset}", "meshes", subject="{subject}")),
    log:
        log_path("segment"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "segment.tsv", subject="{subject}")
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=training_mem_mb,
        runtime=30,
        gpu=1,
    params:
        settings=wf.segment.scan_settings,
        roles=wf.segment.roles,
        reference=wf.segment.reference,
    script:
        "../workflow_scripts/segment_scan.py"


rule segment_table:
    """Every segmented scan's label-free QC in one table, the outliers flagged with their reasons."""
    input:
        records=wf.segment.scan_records,
    output:
        table=report(
            entity_path("segment", "{dataset}", "qc.tsv"),
            category="Segmentations",
            caption="../report/segment_qc.rst",
            labels={"dataset": "{dataset}", "table": "label-free QC"},
        ),
    log:
        log_path("segment", "table"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/segment_table.py"


rule export_bundle:
    """A trained method's models of every fold, with its card, QC files and checksums, as one archive."""
    input:
        files=wf.segment.export_files,
    output:
        bundle=entity_path("bundles", "{dataset}", "bundle.tar.gz", method="{method}"),
    log:
        log_path("bundles", "{method}"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        settings=wf.segment.export_settings,
    script:
        "../workflow_scripts/export_bundle.py"
