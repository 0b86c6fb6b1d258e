# Registration (knee paper 3.1): choose a reference per shape model, then register every
# subject's structure to it (affine + diffeomorphic demons, or ANTs SyN): one job per subject
# and structure so that a cluster runs them side by side.


rule select_reference:
    """Scores every subject's structure as a reference (aligned coarse overlaps) and writes the chosen one."""
    input:
        masks=wf.shape.masks,
    output:
        table=out("registration", "reference.tsv", bone="{bone}"),
        image=out("registration", "reference.nii.gz", bone="{bone}"),
        mask=out("registration", "refmask.nii.gz", bone="{bone}"),
    log:
        log_path("registration", "bone-{bone}_reference"),
    conda:
        "../envs/imaging.yaml"
    threads: 2
    resources:
        mem_mb=selection_mem_mb,
        runtime=120,
    params:
        subjects=wf.shape.subjects,
        members=wf.shape.members,
        shape=wf.shape.selection_settings,
    script:
        "../workflow_scripts/select_reference.py"


rule register_structure:
    """Registers one subject's structure to the reference; records Dice, Jacobian, run time, convergence."""
    input:
        mask=out("preprocess", "mask.nii.gz", subject="{subject}"),
        reference=wf.shape.reference,
    output:
        affine=out("registration", "affine.tfm", subject="{subject}", structure="{structure}"),
        field=out("registration", "field.nii.gz", subject="{subject}", structure="{structure}"),
        record=out("registration", "registration.json", subject="{subject}", structure="{structure}"),
    log:
        log_path("registration", "sub-{subject}_structure-{structure}"),
    benchmark:
        "results/benchmarks/registration/{dataset}/sub-{subject}_structure-{structure}.tsv"
    group:
        "shape"  # with its batch: one cluster job per batch of subjects (profiles/slurm)
    conda:
        "../envs/imaging.yaml"
    threads: 1
    resources:
        mem_mb=registration_mem_mb,
        runtime=30,
    params:
        mirrored=wf.shape.mirrored,
        shape=wf.shape.registration_settings,
    script:
        "../workflow_scripts/register_structure.py"
