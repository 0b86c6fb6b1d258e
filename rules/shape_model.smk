# Shape model (knee paper 3.2): generalised Procrustes analysis and PCA of the landmarks of one
# training fold (no test subject in the model that tests it), with its quality report.


rule shape_model:
    """Procrustes + PCA of a fold's training landmarks; compactness, generalisation, specificity; mode pictures."""
    input:
        correspondence=out("landmarks", "correspondence.tsv", bone="{bone}"),
        splits=out("splits", "splits.tsv"),
        landmarks=wf.shape.landmarks,
    output:
        model=out("shape", "model.npz", bone="{bone}", fold="{fold}"),
        header=out("shape", "model.json", bone="{bone}", fold="{fold}"),
        quality=out("shape", "quality.tsv", bone="{bone}", fold="{fold}"),
        quality_png=report(
            out("shape", "quality.png", bone="{bone}", fold="{fold}"),
            category="Shape models",
            subcategory="{dataset}",
            caption="../report/shape_quality.rst",
            labels={"bone": "{bone}", "fold": "{fold}", "figure": "quality"},
        ),
        quality_svg=out("shape", "quality.svg", bone="{bone}", fold="{fold}"),
        modes=report(
            out("shape", "modes.png", bone="{bone}", fold="{fold}"),
            category="Shape models",
            subcategory="{dataset}",
            caption="../report/shape_modes.rst",
            labels={"bone": "{bone}", "fold": "{fold}", "figure": "modes"},
        ),
    log:
        log_path("shape", "bone-{bone}_fold-{fold}"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        shape=wf.shape.model_settings,
    script:
        "../workflow_scripts/shape_model.py"
