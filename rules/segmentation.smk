# Segmentation: distance weight maps, training (one model per method, fold and view; SPAR's regularised
# segmenters after their shape auto-encoder) and three-plane fusion weights. Training is a GPU rule (gpu=1):
# the code takes CUDA when present and the CPU otherwise.


rule weight_map:
    """The hip paper's distance weight map of a subject's mask (sampled with the slices in training)."""
    input:
        mask=out("preprocess", "mask.nii.gz", subject="{subject}"),
    output:
        weight=entity_path("weightmaps", "{dataset}", "weight.nii.gz", subject="{subject}", wmap="{wmap}"),
    log:
        log_path("weightmaps", "{wmap}/{subject}"),
    group:
        "preprocess"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    params:
        settings=wf.segmentation.weight_map_settings,
    script:
        "../workflow_scripts/weight_map.py"


rule pretrain_model:
    """Pre-training of one view's model on the poor labels of a fold's training and validation subjects."""
    input:
        unpack(wf.segmentation.pretraining_inputs),
    output:
        model=model_path("{dataset}", "pretrained.pt", method="{method}", fold="{fold}", view="{view}"),
        info=model_path("{dataset}", "pretrained.json", method="{method}", fold="{fold}", view="{view}"),
        history=model_path("{dataset}", "pretrainhistory.csv", method="{method}", fold="{fold}", view="{view}"),
    log:
        log_path("models", "{method}/fold-{fold}_view-{view}_pretrain"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "pretrain.tsv", method="{method}", fold="{fold}", view="{view}")
    priority: 10  # the GPU chain is the long pole: start it as soon as its inputs exist
    conda:
        "../envs/torch.yaml"
    threads: wf.segmentation.threads
    resources:
        mem_mb=training_mem_mb,
        runtime=wf.segmentation.runtime,
        gpu=1,
    params:
        settings=wf.segmentation.method_settings,
        subjects=wf.segmentation.fold_subjects,
        workdir=wf.segmentation.work_dir,
    script:
        "../workflow_scripts/pretrain_model.py"


rule train_model:
    """Training of one view's model on a fold (fine-tuning in rounds when the method is interactive)."""
    input:
        unpack(wf.segmentation.training_inputs),
    output:
        model=model_path("{dataset}", "model.pt", method="{method}", fold="{fold}", view="{view}"),
        info=model_path("{dataset}", "model.json", method="{method}", fold="{fold}", view="{view}"),
        history=model_path("{dataset}", "history.csv", method="{method}", fold="{fold}", view="{view}"),
        curve=report(
            model_path("{dataset}", "curve.png", method="{method}", fold="{fold}", view="{view}"),
            category="Training",
            caption="../report/curve.rst",
            labels={"dataset": "{dataset}", "method": "{method}", "fold": "{fold}", "view": "{view}"},
        ),
        rounds=model_path("{dataset}", "rounds.csv", method="{method}", fold="{fold}", view="{view}"),
        round_weights=model_path("{dataset}", "rounds.pt", method="{method}", fold="{fold}", view="{view}"),
    log:
        log_path("models", "{method}/fold-{fold}_view-{view}"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "train.tsv", method="{method}", fold="{fold}", view="{view}")
    wildcard_constraints:
        method=wf.plan.trained_pattern(regularised=False),
    priority: 10  # the GPU chain is the long pole: start it as soon as its inputs exist
    conda:
        "../envs/torch.yaml"
    threads: wf.segmentation.threads
    resources:
        mem_mb=training_mem_mb,
        runtime=wf.segmentation.runtime,
        gpu=1,
    params:
        settings=wf.segmentation.method_settings,
        subjects=wf.segmentation.fold_subjects,
        workdir=wf.segmentation.work_dir,
    script:
        "../workflow_scripts/train_model.py"


rule train_shape_autoencoder:
    """SPAR's shape auto-encoder on the 2D mask slices of a fold's training subjects (shared by equal settings)."""
    input:
        unpack(wf.segmentation.autoencoder_inputs),
    output:
        weights=entity_path(
            "models", "{dataset}", "autoencoder.pt", autoencoder="{aekey}", fold="{fold}", view="{view}"
        ),
        info=entity_path("models", "{dataset}", "autoencoder.json", autoencoder="{aekey}", fold="{fold}", view="{view}"),
        history=entity_path(
            "models", "{dataset}", "autoencoderhistory.csv", autoencoder="{aekey}", fold="{fold}", view="{view}"
        ),
    log:
        log_path("models", "autoencoder-{aekey}/fold-{fold}_view-{view}"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "autoencoder.tsv", autoencoder="{aekey}", fold="{fold}", view="{view}")
    wildcard_constraints:
        aekey="[0-9a-f]{10}",
    priority: 10
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=training_mem_mb,
        runtime=60,
        gpu=1,
    params:
        settings=wf.segmentation.autoencoder_settings,
        workdir=wf.segmentation.autoencoder_work_dir,
    script:
        "../workflow_scripts/train_shape_autoencoder.py"


rule train_regularised:
    """A fold's segmenter with SPAR or a baseline regulariser (the auto-encoder's codes recorded per epoch)."""
    input:
        unpack(wf.segmentation.regularised_inputs),
    output:
        model=model_path("{dataset}", "model.pt", method="{method}", fold="{fold}", view="{view}"),
        info=model_path("{dataset}", "model.json", method="{method}", fold="{fold}", view="{view}"),
        history=model_path("{dataset}", "history.csv", method="{method}", fold="{fold}", view="{view}"),
        curve=report(
            model_path("{dataset}", "curve.png", method="{method}", fold="{fold}", view="{view}"),
            category="Training",
            caption="../report/curve.rst",
            labels={"dataset": "{dataset}", "method": "{method}", "fold": "{fold}", "view": "{view}"},
        ),
        latents=model_path("{dataset}", "latents.npz", method="{method}", fold="{fold}", view="{view}"),
    log:
        log_path("models", "{method}/fold-{fold}_view-{view}"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "train.tsv", method="{method}", fold="{fold}", view="{view}")
    wildcard_constraints:
        method=wf.plan.trained_pattern(regularised=True),
    priority: 10
    conda:
        "../envs/torch.yaml"
    threads: wf.segmentation.threads
    resources:
        mem_mb=training_mem_mb,
        runtime=wf.segmentation.runtime,
        gpu=1,
    params:
        settings=wf.segmentation.method_settings,
        subjects=wf.segmentation.fold_subjects,
        workdir=wf.segmentation.work_dir,
    script:
        "../workflow_scripts/train_regularised.py"


rule fit_fusion:
    """Three-plane fusion weights (alpha, beta, gamma) fitted on a fold's validation subjects (Luan et al.)."""
    input:
        unpack(wf.segmentation.fusion_inputs),
    output:
        weights=model_path("{dataset}", "fusion.json", method="{method}", fold="{fold}"),
        grid=model_path("{dataset}", "fusiongrid.csv", method="{method}", fold="{fold}"),
    log:
        log_path("models", "{method}/fold-{fold}_fusion"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "fusion.tsv", method="{method}", fold="{fold}")
    conda:
        "../envs/torch.yaml"
    threads: wf.segmentation.threads
    resources:
        mem_mb=training_mem_mb,
        runtime=60,
        gpu=1,
    params:
        settings=wf.segmentation.method_settings,
    script:
        "../workflow_scripts/fit_fusion.py"
