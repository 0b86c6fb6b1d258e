# Segmentation: distance weight maps, training (one model per method, fold and view), three-plane fusion
# weights, and predictions of the test subjects written where the evaluation stage scores them.
# Training and prediction are GPU rules (gpu=1): the code takes CUDA when present and the CPU otherwise.


rule weight_map:
    """The hip paper's distance weight map of a subject's mask (sampled with the slices in training)."""
    input:
        mask=out("preprocess", "mask.nii.gz", subject="{subject}"),
    output:
        weight=entity_path("weightmaps", "{dataset}", "weight.nii.gz", subject="{subject}", wmap="{wmap}"),
    params:
        settings=weight_map_cfg,
    log:
        log_path("weightmaps", "{wmap}/{subject}"),
    conda:
        "../envs/imaging.yaml"
    group:
        "preprocess"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    script:
        "../workflow_scripts/weight_map.py"


rule preprocess_poor_mask:
    """A subject's poor (degraded) mask on its preprocessed grid, for pre-training (hip paper)."""
    input:
        poor=poor_mask_raw,
        image=out("preprocess", "image.nii.gz", subject="{subject}"),
        raw_image=poor_mask_image,
    output:
        mask=out("preprocess", "poormask.nii.gz", subject="{subject}"),
    params:
        labels=eval_labels,
        mask_geometry=mask_geometry,
    log:
        log_path("preprocess", "{subject}_poor"),
    conda:
        "../envs/imaging.yaml"
    group:
        "preprocess"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    script:
        "../workflow_scripts/preprocess_poor_mask.py"


rule pretrain_model:
    """Pre-training of one view's model on the poor labels of a fold's training and validation subjects."""
    input:
        unpack(pretraining_inputs),
    output:
        model=entity_path("models", "{dataset}", "pretrained.pt", method="{method}", fold="{fold}", view="{view}"),
        info=entity_path("models", "{dataset}", "pretrained.json", method="{method}", fold="{fold}", view="{view}"),
        history=entity_path("models", "{dataset}", "pretrainhistory.csv", method="{method}", fold="{fold}",
                            view="{view}"),
    params:
        settings=method_cfg,
        subjects=fold_subject_names,
        workdir=work_dir,
    log:
        log_path("models", "{method}/fold-{fold}_view-{view}_pretrain"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "pretrain.tsv", method="{method}", fold="{fold}", view="{view}")
    conda:
        "../envs/torch.yaml"
    threads: training_threads
    priority: 10  # the GPU chain is the long pole: start it as soon as its inputs exist
    resources:
        mem_mb=training_mem_mb,
        runtime=training_runtime,
        gpu=1,
    script:
        "../workflow_scripts/pretrain_model.py"


rule train_model:
    """Training of one view's model on a fold (fine-tuning in rounds when the method is interactive)."""
    input:
        unpack(training_inputs),
    output:
        model=entity_path("models", "{dataset}", "model.pt", method="{method}", fold="{fold}", view="{view}"),
        info=entity_path("models", "{dataset}", "model.json", method="{method}", fold="{fold}", view="{view}"),
        history=entity_path("models", "{dataset}", "history.csv", method="{method}", fold="{fold}", view="{view}"),
        curve=report(entity_path("models", "{dataset}", "curve.png", method="{method}", fold="{fold}", view="{view}"),
                     category="Training", caption="../report/curve.rst",
                     labels={"dataset": "{dataset}", "method": "{method}", "fold": "{fold}", "view": "{view}"}),
        rounds=entity_path("models", "{dataset}", "rounds.csv", method="{method}", fold="{fold}", view="{view}"),
    params:
        settings=method_cfg,
        subjects=fold_subject_names,
        workdir=work_dir,
    log:
        log_path("models", "{method}/fold-{fold}_view-{view}"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "train.tsv", method="{method}", fold="{fold}", view="{view}")
    conda:
        "../envs/torch.yaml"
    threads: training_threads
    priority: 10  # the GPU chain is the long pole: start it as soon as its inputs exist
    resources:
        mem_mb=training_mem_mb,
        runtime=training_runtime,
        gpu=1,
    script:
        "../workflow_scripts/train_model.py"


rule fit_fusion:
    """Three-plane fusion weights (alpha, beta, gamma) fitted on a fold's validation subjects (Luan et al.)."""
    input:
        unpack(fusion_inputs),
    output:
        weights=entity_path("models", "{dataset}", "fusion.json", method="{method}", fold="{fold}"),
        grid=entity_path("models", "{dataset}", "fusiongrid.csv", method="{method}", fold="{fold}"),
    params:
        settings=method_cfg,
    log:
        log_path("models", "{method}/fold-{fold}_fusion"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "fusion.tsv", method="{method}", fold="{fold}")
    conda:
        "../envs/torch.yaml"
    threads: training_threads
    resources:
        mem_mb=training_mem_mb,
        runtime=60,
        gpu=1,
    script:
        "../workflow_scripts/fit_fusion.py"


rule predict_subject:
    """A test subject's prediction by the model(s) of the fold that tests it, on its preprocessed grid."""
    input:
        unpack(prediction_inputs),
    output:
        prediction=entity_path("predictions", "{dataset}", "pred.nii.gz", subject="{subject}", method="{method}"),
        record=entity_path("predictions", "{dataset}", "pred.json", subject="{subject}", method="{method}"),
    params:
        settings=inference_cfg,
    log:
        log_path("predictions", "{method}/{subject}"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "predict.tsv", subject="{subject}", method="{method}")
    wildcard_constraints:
        method="|".join(TRAINED_NAMES) or "(?!)",
    conda:
        "../envs/torch.yaml"
    threads: training_threads
    resources:
        mem_mb=training_mem_mb,
        runtime=30,
        gpu=1,
    script:
        "../workflow_scripts/predict_subject.py"
