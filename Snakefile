# mskseg: musculoskeletal image segmentation workflow (knee MRI, hip CT).
# The rules say what is made from what; the package under src/mskseg says how.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/qc.smk"
include: "rules/splits.smk"
include: "rules/preprocess.smk"
include: "rules/registration.smk"
include: "rules/landmarks.smk"
include: "rules/shape_model.smk"
include: "rules/predictions.smk"
include: "rules/segmentation.smk"
include: "rules/evaluation.smk"


rule all:
    input:
        data_targets,
        qc_targets,
        split_targets,
        preprocess_targets,
        landmark_targets,
        shape_model_targets,
        segmentation_targets,
        evaluation_targets,
    default_target: True


rule data:
    input:
        data_targets,


rule qc:
    input:
        qc_targets,


rule splits:
    input:
        split_targets,


rule preprocess:
    input:
        preprocess_targets,


rule shape:
    input:
        landmark_targets,
        shape_model_targets,


rule models:
    input:
        segmentation_targets,


rule tables:
    input:
        evaluation_targets,
