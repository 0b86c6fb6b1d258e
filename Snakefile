# mskseg: musculoskeletal image segmentation workflow (knee MRI, hip CT).
# The rules say what is made from what; the package under src/mskseg says how.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/qc.smk"
include: "rules/splits.smk"
include: "rules/preprocess.smk"
include: "rules/registration.smk"
include: "rules/landmarks.smk"
include: "rules/shape_model.smk"
include: "rules/segmentation.smk"
include: "rules/shape_fitting.smk"
include: "rules/predictions.smk"
include: "rules/evaluation.smk"
include: "rules/segment.smk"
include: "rules/studies.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        wf.targets.data,
        wf.targets.qc,
        wf.targets.splits,
        wf.targets.preprocess,
        wf.targets.landmarks,
        wf.targets.shape_models,
        wf.targets.models,
        wf.targets.tables,
        wf.targets.segment,
        wf.targets.studies,
        wf.targets.report,


rule data:
    input:
        wf.targets.data,


rule qc:
    input:
        wf.targets.qc,


rule splits:
    input:
        wf.targets.splits,


rule preprocess:
    input:
        wf.targets.preprocess,


rule shape:
    input:
        wf.targets.landmarks,
        wf.targets.shape_models,


rule models:
    input:
        wf.targets.models,


rule tables:
    input:
        wf.targets.tables,


rule segment:
    input:
        wf.targets.segment,


rule export_models:
    input:
        wf.targets.export_models,


rule hip_transfer:
    input:
        wf.targets.hip_transfer,


rule knee_shape_fitting:
    input:
        wf.targets.knee_shape_fitting,


rule three_plane_fusion:
    input:
        wf.targets.three_plane_fusion,


rule cartilage_design:
    input:
        wf.targets.cartilage_design,


rule spar:
    input:
        wf.targets.spar,
