# Validation, manifests, wildcard constraints, path and input functions. No rules here.
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # the workflow parses without `pip install`

from mskseg import config as mskcfg
from mskseg.paths import SUBJECT_ID_PATTERN, entity_path

_resolved = mskcfg.apply_scale(config)
config.clear()
config.update(_resolved)
validate(config, schema="../schemas/config.schema.yaml")
for _name, _ds in config["datasets"].items():
    mskcfg.check_dataset(_name, _ds)

DATASETS = list(config["datasets"])
MANIFESTS = {name: mskcfg.dataset_manifest(name, ds) for name, ds in config["datasets"].items()}
SYNTHETIC = [name for name, ds in config["datasets"].items() if mskcfg.source_kind(ds) == "synthetic"]
SYNTHETIC_PATTERN = "|".join(SYNTHETIC) or "(?!)"  # (?!) never matches: no synthetic dataset


wildcard_constraints:
    dataset="|".join(DATASETS),
    subject=SUBJECT_ID_PATTERN,


def out(stage, suffix, subject=None, **entities):
    """results/<stage>/{dataset}/[sub-<subject>_]<key>-<value>_<suffix> with wildcards."""
    return entity_path(stage, "{dataset}", suffix, subject=subject, **entities)


def log_path(stage, name="{subject}"):
    return f"logs/{stage}/{{dataset}}/{name}.log"


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def manifest_row(wildcards):
    frame = MANIFESTS[wildcards.dataset]
    return frame[frame["subject"] == wildcards.subject].iloc[0]


# ---- data ------------------------------------------------------------------------------------
def synthetic_spec(wildcards):
    return dataset_cfg(wildcards)["source"]["synthetic"]


def synthetic_index(wildcards):
    return MANIFESTS[wildcards.dataset]["subject"].tolist().index(wildcards.subject)


def synthetic_mem_mb(wildcards, attempt):
    spec = synthetic_spec(wildcards)
    shape = spec.get("shape") or (128, 128, 128)
    voxels = shape[0] * shape[1] * shape[2]
    return int((1000 + voxels * 4 * 40 / 1e6) * attempt)


def synthetic_outputs(wildcards):
    if wildcards.dataset not in SYNTHETIC:
        return []
    return [entity_path("synthetic", wildcards.dataset, "image.nii.gz", subject=s)
            for s in MANIFESTS[wildcards.dataset]["subject"]]


def manifest_source(wildcards):
    src = dataset_cfg(wildcards)["source"]
    return [src["manifest"]["path"]] if "manifest" in src else []


# ---- quality control -------------------------------------------------------------------------
def raw_paths(wildcards):
    """Image and label paths of a subject as the manifest gives them (may not exist)."""
    row = manifest_row(wildcards)
    return {"image": row["image"], "label": row["label"]}


def raw_inputs(wildcards):
    """The subject's raw files that exist (missing ones are recorded by QC, not a DAG error)."""
    synthetic = wildcards.dataset in SYNTHETIC
    return {key: value for key, value in raw_paths(wildcards).items()
            if value and (synthetic or Path(value).exists())}


def qc_settings(wildcards):
    return mskcfg.qc_settings(dataset_cfg(wildcards), config["qc"])


def mem_from_input(wildcards, input, attempt):
    """Memory for a job that holds a few copies of its (possibly compressed) input volumes."""
    return int(max(1000, 40 * input.size_mb) * attempt)


def qc_records(wildcards):
    return expand(out("qc", "qc.tsv", subject="{subject}"), dataset=wildcards.dataset,
                  subject=MANIFESTS[wildcards.dataset]["subject"])


def passed_subjects(dataset, labelled=True):
    """Subjects that passed QC (a checkpoint: known once qc_summary has run)."""
    table = checkpoints.qc_summary.get(dataset=dataset).output.subjects
    frame = pd.read_csv(table, sep="\t", dtype={"subject": str}, keep_default_na=False)
    keep = frame["qc_passed"].astype(str) == "True"
    if labelled:
        keep &= frame["has_label"].astype(str) == "True"
    return frame.loc[keep, "subject"].tolist()


# ---- preprocessing ---------------------------------------------------------------------------
def preprocess_settings(wildcards):
    return mskcfg.preprocess_settings(dataset_cfg(wildcards))


def mask_geometry(wildcards):
    return mskcfg.mask_geometry(dataset_cfg(wildcards))


# ---- targets ---------------------------------------------------------------------------------
def data_targets(wildcards):
    targets = [entity_path("data", d, "manifest.tsv") for d in DATASETS]
    for d in SYNTHETIC:
        targets += expand(entity_path("synthetic", d, "{kind}", subject="{subject}"),
                          subject=MANIFESTS[d]["subject"], kind=["image.nii.gz", "landmarks.csv"])
    return targets


def qc_targets(wildcards):
    return [entity_path("qc", d, name) for d in DATASETS for name in ("qc_table.tsv", "subjects.tsv")]


def split_targets(wildcards):
    return [entity_path("splits", d, "splits.tsv") for d in DATASETS]


def preprocess_targets(wildcards):
    targets = []
    for d in DATASETS:
        targets += expand(entity_path("preprocess", d, "{kind}", subject="{subject}"),
                          subject=passed_subjects(d), kind=["image.nii.gz", "mask.nii.gz", "preprocess.json"])
    return targets



# ---- splits ----------------------------------------------------------------------------------
def split_cfg(wildcards):
    return dict(dataset_cfg(wildcards).get("split", {}))


def split_base(wildcards):
    """Folder that a fixed split file's relative path is relative to: the working directory."""
    return str(Path.cwd())
