# Landmarks (knee paper 3.2): points spread evenly over the reference surface, carried to every
# subject through its registration, with their distance to the subject's own surface and, on
# phantoms, to the true corresponding points.


rule reference_landmarks:
    """N points sampled evenly over the reference surface (and, on phantoms, the reference's true landmarks)."""
    input:
        mask=out("registration", "refmask.nii.gz", bone="{bone}"),
        table=out("registration", "reference.tsv", bone="{bone}"),
        truth=wf.shape.truth,
    output:
        landmarks=out("landmarks", "reference_landmarks.csv", bone="{bone}"),
        markups=out("landmarks", "reference_landmarks.mrk.json", bone="{bone}"),
        truth=out("landmarks", "reference_truth.csv", bone="{bone}"),
    log:
        log_path("landmarks", "bone-{bone}_reference"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    params:
        truth_subjects=wf.shape.truth_subjects,
        shape=wf.shape.landmark_settings,
    script:
        "../workflow_scripts/reference_landmarks.py"


rule warp_landmarks:
    """Carries the reference landmarks to one subject's structure; measures their distance to its surface."""
    input:
        unpack(wf.shape.warp_inputs),
        affine=out("registration", "affine.tfm", subject="{subject}", structure="{structure}"),
        field=out("registration", "field.nii.gz", subject="{subject}", structure="{structure}"),
        record=out("registration", "registration.json", subject="{subject}", structure="{structure}"),
        mask=out("preprocess", "mask.nii.gz", subject="{subject}"),
    output:
        landmarks=out("landmarks", "landmarks.csv", subject="{subject}", structure="{structure}"),
        markups=out("landmarks", "landmarks.mrk.json", subject="{subject}", structure="{structure}"),
        quality=out("landmarks", "correspondence.json", subject="{subject}", structure="{structure}"),
    log:
        log_path("landmarks", "sub-{subject}_structure-{structure}"),
    group:
        "shape"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=mem_from_input,
        runtime=15,
    params:
        mirrored=wf.shape.mirrored,
        shape=wf.shape.landmark_settings,
    script:
        "../workflow_scripts/warp_landmarks.py"


rule landmarks_batch:
    """A batch of subjects' registration and correspondence records (every structure) in one table; with its
    members, one cluster job per batch."""
    input:
        records=wf.batches.correspondence,
    output:
        table=out("landmarks", "correspondence.tsv", batch="{batch}"),
    log:
        log_path("landmarks", "batch-{batch}"),
    group:
        "shape"  # one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        subjects=wf.batches.instance_subjects,
    script:
        "../workflow_scripts/landmarks_batch.py"


rule correspondence_table:
    """Correspondence quality of every subject of a shape model in one table, the reference marked (and the
    means, without the reference, in the log)."""
    input:
        tables=wf.batches.tables_of(out("landmarks", "correspondence.tsv", batch="{batch}"), "passed"),
        reference=out("registration", "reference.tsv", bone="{bone}"),
    output:
        table=out("landmarks", "correspondence.tsv", bone="{bone}"),
    log:
        log_path("landmarks", "bone-{bone}_correspondence"),
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        structures=wf.shape.member_structures,
    script:
        "../workflow_scripts/correspondence_table.py"
