# Predictions that the evaluation stage scores. Trained models write theirs here too (later stages);
# until then a `perturbed` method stands in: the reference mask with seeded, known errors.


rule perturb_prediction:
    """A perturbed copy of a subject's preprocessed mask: smooth displacement, blobs, optional offset."""
    input:
        mask=out("preprocess", "mask.nii.gz", subject="{subject}"),
    output:
        prediction=entity_path("predictions", "{dataset}", "pred.nii.gz", subject="{subject}", method="{method}"),
        record=entity_path("predictions", "{dataset}", "pred.json", subject="{subject}", method="{method}"),
    params:
        settings=perturb_cfg,
    log:
        log_path("predictions", "{method}/{subject}"),
    wildcard_constraints:
        method="|".join(PERTURBED) or "(?!)",
    conda:
        "../envs/imaging.yaml"
    group:
        "evaluation"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    script:
        "../workflow_scripts/perturb_prediction.py"
