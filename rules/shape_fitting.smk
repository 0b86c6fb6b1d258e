# Shape fitting (knee paper 3.3-3.6), a `kind: shape_fitting` method per fold: deep shape regression per bone
# on the fold's shape model, local 3D U-Nets on patches at cartilage landmarks, and a test subject's
# prediction from the 2D pre-segmentation to the ensembled label map on one device (GPU rules, gpu=1).


rule train_shape_regression:
    """A fold's shape regression network of one bone (or the whole volume): crops to landmarks in mm."""
    input:
        unpack(wf.shape_fitting.regression_inputs),
    output:
        model=fitting_path("{dataset}", "regression.pt", method="{method}", fold="{fold}", part="{part}"),
        info=fitting_path("{dataset}", "regression.json", method="{method}", fold="{fold}", part="{part}"),
        history=fitting_path("{dataset}", "regressionhistory.csv", method="{method}", fold="{fold}", part="{part}"),
    log:
        log_path("models", "{method}/fold-{fold}_part-{part}_regression"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "regression.tsv", method="{method}", fold="{fold}", part="{part}")
    wildcard_constraints:
        method=wf.plan.method_pattern("shape_fitting"),
    priority: 10  # the GPU chain is the long pole: start it as soon as its inputs exist
    conda:
        "../envs/torch.yaml"
    threads: wf.shape_fitting.threads
    resources:
        mem_mb=training_mem_mb,
        runtime=wf.shape_fitting.runtime,
        gpu=1,
    params:
        settings=wf.shape_fitting.regression_settings,
        part=wf.shape_fitting.part_labels,
        subjects=wf.shape_fitting.fold_subjects,
        workdir=wf.shape_fitting.work_dir,
    script:
        "../workflow_scripts/train_shape_regression.py"


rule train_refinement:
    """A fold's refinement landmarks (cartilage region, NMS) and the local 3D U-Net on patches centred on them."""
    input:
        unpack(wf.shape_fitting.refinement_inputs),
    output:
        model=fitting_path("{dataset}", "refinement.pt", method="{method}", fold="{fold}"),
        info=fitting_path("{dataset}", "refinement.json", method="{method}", fold="{fold}"),
        history=fitting_path("{dataset}", "refinementhistory.csv", method="{method}", fold="{fold}"),
        selection=fitting_path("{dataset}", "selection.tsv", method="{method}", fold="{fold}"),
    log:
        log_path("models", "{method}/fold-{fold}_refinement"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "refinement.tsv", method="{method}", fold="{fold}")
    wildcard_constraints:
        method=wf.plan.method_pattern("shape_fitting"),
    priority: 10
    conda:
        "../envs/torch.yaml"
    threads: wf.shape_fitting.threads
    resources:
        mem_mb=training_mem_mb,
        runtime=wf.shape_fitting.runtime,
        gpu=1,
    params:
        settings=wf.shape_fitting.refinement_settings,
        bones=wf.shape_fitting.bone_labels,
        subjects=wf.shape_fitting.fold_subjects,
        workdir=wf.shape_fitting.work_dir,
    script:
        "../workflow_scripts/train_refinement.py"


rule predict_shape_fitting:
    """A test subject's label map and fitted landmarks by the fold that tests it, timed per step."""
    input:
        unpack(wf.shape_fitting.predict_inputs),
    output:
        prediction=entity_path("predictions", "{dataset}", "pred.nii.gz", subject="{subject}", method="{method}"),
        record=entity_path("predictions", "{dataset}", "pred.json", subject="{subject}", method="{method}"),
        landmarks=entity_path("predictions", "{dataset}", "landmarks.csv", subject="{subject}", method="{method}"),
    log:
        log_path("predictions", "{method}/{subject}"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "predict.tsv", subject="{subject}", method="{method}")
    wildcard_constraints:
        method=wf.plan.method_pattern("shape_fitting"),
    conda:
        "../envs/torch.yaml"
    threads: wf.shape_fitting.threads
    resources:
        mem_mb=training_mem_mb,
        runtime=30,
        gpu=1,
    params:
        settings=wf.shape_fitting.settings,
    script:
        "../workflow_scripts/predict_shape_fitting.py"


rule landmark_errors:
    """Landmark errors (mm) of every scored shape-fitting method against the warped landmarks, and the seconds of
    each inference step."""
    input:
        unpack(wf.shape_fitting.error_inputs),
    output:
        table=entity_path("tables", "{dataset}", "landmarks.md"),
        page=report(
            entity_path("tables", "{dataset}", "landmarks.html"),
            category="Evaluation",
            caption="../report/landmarks.rst",
            labels={"dataset": "{dataset}", "table": "landmark errors"},
        ),
        errors=entity_path("tables", "{dataset}", "landmarks.tsv"),
        steps=entity_path("tables", "{dataset}", "steps.tsv"),
    log:
        log_path("tables", "landmarks"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        rows=wf.shape_fitting.error_rows,
    script:
        "../workflow_scripts/landmark_errors.py"
