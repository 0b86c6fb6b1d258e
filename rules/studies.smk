# Studies: a paper's experiment over a dataset's methods, with its own table and one target each
# (`snakemake hip_transfer`). The hip paper's Table 1: every design choice after every interactive round;
# the knee paper's Table 1 with its landmark errors and step times; SPAR's latent codes.


rule evaluate_rounds:
    """The fold's test subjects scored with the weights of every interactive round before the last."""
    input:
        unpack(wf.studies.round_inputs),
    output:
        table=entity_path("evaluation", "{dataset}", "rounds.csv", method="{method}", fold="{fold}"),
    log:
        log_path("evaluation", "{method}/fold-{fold}_rounds"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "rounds.tsv", method="{method}", fold="{fold}")
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
        inference=wf.predictions.inference_settings,
        subjects=wf.studies.round_subjects,
        evaluation=wf.studies.round_settings,
    script:
        "../workflow_scripts/evaluate_rounds.py"


rule hip_transfer_table:
    """The hip paper's Table 1: Dice, HD and GapDice of each design choice after each round, and |E|."""
    input:
        unpack(wf.studies.transfer_inputs),
    output:
        table=entity_path("studies", "hip_transfer", "table.md"),
        page=report(
            entity_path("studies", "hip_transfer", "table.html"),
            category="Studies",
            caption="../report/hip_transfer.rst",
            labels={"study": "hip_transfer", "table": "Table 1"},
        ),
        csv=entity_path("studies", "hip_transfer", "table.csv"),
    log:
        "logs/studies/hip_transfer.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        study=wf.studies.transfer_params,
    script:
        "../workflow_scripts/hip_transfer_table.py"


rule knee_shape_fitting_table:
    """The knee paper's Table 1 (2D U-Net against the full method, its own numbers quoted), landmark errors, steps."""
    input:
        unpack(wf.studies.knee_inputs),
    output:
        table=entity_path("studies", "knee_shape_fitting", "table.md"),
        page=report(
            entity_path("studies", "knee_shape_fitting", "table.html"),
            category="Studies",
            caption="../report/knee_shape_fitting.rst",
            labels={"study": "knee_shape_fitting", "table": "Table 1"},
        ),
        csv=entity_path("studies", "knee_shape_fitting", "table.csv"),
    log:
        "logs/studies/knee_shape_fitting.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        study=wf.studies.knee_params,
    script:
        "../workflow_scripts/knee_shape_fitting_table.py"


rule evaluate_planes:
    """A three-plane method's fold: its test subjects scored with each plane's model alone and with the blend."""
    input:
        unpack(wf.studies.plane_inputs),
    output:
        scores=entity_path("evaluation", "{dataset}", "planes.csv", method="{method}", fold="{fold}"),
        confusions=entity_path("evaluation", "{dataset}", "planeconfusion.csv", method="{method}", fold="{fold}"),
    log:
        log_path("evaluation", "{method}/fold-{fold}_planes"),
    benchmark:
        entity_path("benchmarks", "{dataset}", "planes.tsv", method="{method}", fold="{fold}")
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
        inference=wf.predictions.inference_settings,
        subjects=wf.studies.round_subjects,
        evaluation=wf.studies.round_settings,
    script:
        "../workflow_scripts/evaluate_planes.py"


rule three_plane_table:
    """The three-plane fusion paper's table: each plane and the blend, weights, confusion matrices."""
    input:
        unpack(wf.studies.plane_table_inputs),
    output:
        table=entity_path("studies", "three_plane_fusion", "table.md"),
        page=report(
            entity_path("studies", "three_plane_fusion", "table.html"),
            category="Studies",
            caption="../report/three_plane_fusion.rst",
            labels={"study": "three_plane_fusion", "table": "planes and fused"},
        ),
        csv=entity_path("studies", "three_plane_fusion", "table.csv"),
        figure=report(
            entity_path("studies", "three_plane_fusion", "confusion.png"),
            category="Studies",
            caption="../report/three_plane_confusion.rst",
            labels={"study": "three_plane_fusion", "table": "confusion matrices"},
        ),
    log:
        "logs/studies/three_plane_fusion.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        study=wf.studies.plane_params,
    script:
        "../workflow_scripts/three_plane_table.py"


rule spar_latents:
    """The SPAR paper's Figure 3: predicted and reference shape codes per epoch of a regularised training (PCA)."""
    input:
        latents=wf.studies.latents_input,
    output:
        figure=report(
            entity_path("plots", "{dataset}", "latents.png", method="{method}", fold="{fold}"),
            category="Studies",
            caption="../report/latents.rst",
            labels={"dataset": "{dataset}", "method": "{method}", "fold": "{fold}"},
        ),
    log:
        log_path("plots", "{method}/fold-{fold}_latents"),
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/spar_latents.py"


rule cartilage_design_table:
    """The cartilage paper's study: DSC and VOE per experiment with Kruskal-Wallis and Dunn, Dice along the field
    of view, training-set size with the power-law fit."""
    input:
        unpack(wf.studies.design_inputs),
    output:
        table=entity_path("studies", "cartilage_design", "table.md"),
        page=report(
            entity_path("studies", "cartilage_design", "table.html"),
            category="Studies",
            caption="../report/cartilage_design.rst",
            labels={"study": "cartilage_design", "table": "experiments"},
        ),
        csv=entity_path("studies", "cartilage_design", "table.csv"),
        sizes=entity_path("studies", "cartilage_design", "powerlaw.csv"),
        fov=report(
            entity_path("studies", "cartilage_design", "fov.png"),
            category="Studies",
            caption="../report/cartilage_design_fov.rst",
            labels={"study": "cartilage_design", "table": "Dice along the field of view"},
        ),
        powerlaw=report(
            entity_path("studies", "cartilage_design", "powerlaw.png"),
            category="Studies",
            caption="../report/cartilage_design_powerlaw.rst",
            labels={"study": "cartilage_design", "table": "training-set size"},
        ),
    log:
        "logs/studies/cartilage_design.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        study=wf.studies.design_params,
    script:
        "../workflow_scripts/cartilage_design_table.py"
