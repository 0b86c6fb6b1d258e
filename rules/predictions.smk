# Predictions that the evaluation stage scores: a trained method's, by the model(s) of the fold that tests
# the subject (a GPU rule, gpu=1), or a `perturbed` stand-in: the reference mask with seeded, known errors.
# A `files` method's predictions are the user's own files (wf.predictions.path).


rule predict_subject:
    """A test subject's prediction by the model(s) of the fold that tests it, on its preprocessed grid."""
    input:
        unpack(wf.predictions.model_inputs),
    output:
        prediction=entity_path("predictions", "{dataset}", "pred.nii.gz", subject="{subject}", method="{method}"),
        record=entity_path("predictions", "{dataset}", "pred.json", subject="{subject}", method="{method}"),
        probabilities=entity_path("predictions", "{dataset}", "probs.npz", subject="{subject}", method="{method}"),
    log:
        log_path("predictions", "{method}/{subject}"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "predict.tsv", subject="{subject}", method="{method}")
    wildcard_constraints:
        method=wf.plan.method_pattern("trained"),
    conda:
        "../envs/torch.yaml"
    threads: wf.segmentation.threads
    resources:
        mem_mb=training_mem_mb,
        runtime=30,
        gpu=1,
    params:
        settings=wf.predictions.inference_settings,
    script:
        "../workflow_scripts/predict_subject.py"


rule perturb_prediction:
    """A perturbed copy of a subject's preprocessed mask: smooth displacement, blobs, optional offset."""
    input:
        mask=out("preprocess", "mask.nii.gz", subject="{subject}"),
    output:
        prediction=entity_path("predictions", "{dataset}", "pred.nii.gz", subject="{subject}", method="{method}"),
        record=entity_path("predictions", "{dataset}", "pred.json", subject="{subject}", method="{method}"),
    log:
        log_path("predictions", "{method}/{subject}"),
    wildcard_constraints:
        method=wf.plan.method_pattern("perturbed"),
    group:
        "evaluation"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    params:
        settings=wf.predictions.perturb_settings,
    script:
        "../workflow_scripts/perturb_prediction.py"
