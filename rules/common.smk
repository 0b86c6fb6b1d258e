# Validation, manifests, wildcard constraints, path and input functions. No rules here.
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # the workflow parses without `pip install`

from mskseg import config as mskcfg
from mskseg.batches import BATCH_PATTERN, batches
from mskseg.nn.method import MethodSpec
from mskseg.paths import SUBJECT_ID_PATTERN, entity_path
from mskseg.snakemake_compat import check_each_group_once
from snakemake.dag import DAG

check_each_group_once(DAG)  # batch groups: Snakemake checks each group once per member otherwise (see the module)

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
SHAPE_MODELS = {name: mskcfg.shape_models(ds) for name, ds in config["datasets"].items()
                if ds["shape"]["enabled"] and ds.get("bones")}
BONES = sorted({bone for models in SHAPE_MODELS.values() for bone in models})
STRUCTURES = sorted({s for models in SHAPE_MODELS.values() for members in models.values() for s, _ in members})
EVAL_METHODS = {name: mskcfg.evaluated_methods(ds) for name, ds in config["datasets"].items()
                if mskcfg.evaluated_methods(ds)}
PERTURBED = sorted({m for ds in config["datasets"].values() for m, spec in (ds.get("methods") or {}).items()
                    if spec["kind"] == "perturbed"})
METHODS = sorted({m for ds in config["datasets"].values() for m in (ds.get("methods") or {})})
TRAINED = {name: {m: MethodSpec.from_config(m, spec, ds.get("weight_maps") or {})
                  for m, spec in (ds.get("methods") or {}).items() if spec["kind"] == "trained"}
           for name, ds in config["datasets"].items()}
TRAINED_NAMES = sorted({m for specs in TRAINED.values() for m in specs})
WEIGHT_MAPS = sorted({w for ds in config["datasets"].values() for w in (ds.get("weight_maps") or {})})


wildcard_constraints:
    dataset="|".join(DATASETS),
    subject=SUBJECT_ID_PATTERN,
    bone="|".join(BONES) or "(?!)",
    structure="|".join(STRUCTURES) or "(?!)",
    fold="[A-Za-z0-9]+",
    method="|".join(METHODS) or "(?!)",
    metric="|".join(mskcfg.TABLE_METRICS),
    view="sagittal|coronal|axial|mpr|3d",
    wmap="|".join(WEIGHT_MAPS) or "(?!)",
    batch=BATCH_PATTERN,


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
    return mskcfg.canonical(dataset_cfg(wildcards)["source"]["synthetic"])


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


def manifest_cfg(wildcards):
    """What the manifest depends on: the source only (so other settings never redo the QC)."""
    return mskcfg.canonical({"source": dataset_cfg(wildcards)["source"]})


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


# ---- batches: the per-subject chains are gathered (and submitted to a cluster) per batch of subjects --------
def subject_batches(dataset, kind):
    """{batch: subjects} of the subjects that passed QC (kind "passed") or are scored (kind "evaluated")."""
    subjects = passed_subjects(dataset) if kind == "passed" else evaluated_subjects(dataset)
    return batches(subjects, config["batch_subjects"])


def batch_subjects(wildcards, kind):
    members = subject_batches(wildcards.dataset, kind)
    if wildcards.batch not in members:
        raise ValueError(f"{wildcards.dataset} has no batch {wildcards.batch} of {kind} subjects "
                         f"(batch_subjects: {config['batch_subjects']}; batches {', '.join(members) or 'none'})")
    return members[wildcards.batch]


def passed_batch(wildcards):
    return batch_subjects(wildcards, "passed")


def evaluated_batch(wildcards):
    return batch_subjects(wildcards, "evaluated")


def batch_files(path, kind):
    """Input function: ``path`` (with {subject}) for every subject of the batch."""
    def inputs(wildcards):
        return [path.format(subject=s, **dict(wildcards.items())) for s in batch_subjects(wildcards, kind)]
    return inputs


def batch_tables(path, kind):
    """Input function: ``path`` (with {batch}) for every batch of the dataset."""
    def inputs(wildcards):
        return [path.format(batch=b, **dict(wildcards.items())) for b in subject_batches(wildcards.dataset, kind)]
    return inputs


def batch_instances(wildcards):
    """(subject, structure) of every shape model's member for the subjects of a batch."""
    models = SHAPE_MODELS[wildcards.dataset]
    return [(s, st) for s in batch_subjects(wildcards, "passed") for bone in models for st, _ in models[bone]]


def batch_correspondence(wildcards):
    return [entity_path("landmarks", wildcards.dataset, "correspondence.json", subject=s, structure=st)
            for s, st in batch_instances(wildcards)]


def batch_instance_subjects(wildcards):
    return [s for s, _ in batch_instances(wildcards)]


def bone_structures(wildcards):
    return [s for s, _ in bone_members(wildcards)]


# ---- preprocessing ---------------------------------------------------------------------------
def preprocess_settings(wildcards):
    return mskcfg.canonical(mskcfg.preprocess_settings(dataset_cfg(wildcards)))


def mask_geometry(wildcards):
    return mskcfg.mask_geometry(dataset_cfg(wildcards))


# ---- splits ----------------------------------------------------------------------------------
def split_cfg(wildcards):
    return mskcfg.canonical(dataset_cfg(wildcards).get("split", {}))


def split_base(wildcards):
    """Folder that a fixed split file's relative path is relative to: the working directory."""
    return str(Path.cwd())


def fold_ids(dataset):
    """The split ids of a dataset (a checkpoint: known once make_splits has run)."""
    table = checkpoints.make_splits.get(dataset=dataset).output.splits
    frame = pd.read_csv(table, sep="\t", dtype={"split": str})
    return sorted(frame["split"].unique(), key=lambda v: (len(v), v))


# ---- shape model -----------------------------------------------------------------------------
def selection_cfg(wildcards):
    return mskcfg.canonical(mskcfg.shape_settings(dataset_cfg(wildcards), "selection"))


def registration_cfg(wildcards):
    return mskcfg.canonical(mskcfg.shape_settings(dataset_cfg(wildcards), "registration"))


def landmark_cfg(wildcards):
    return mskcfg.canonical(mskcfg.shape_settings(dataset_cfg(wildcards), "landmarks"))


def model_cfg(wildcards):
    return mskcfg.canonical(mskcfg.shape_settings(dataset_cfg(wildcards), "model"))


def bone_members(wildcards):
    """[[structure, mirrored], ...] of the model {bone}."""
    return [[s, bool(m)] for s, m in SHAPE_MODELS[wildcards.dataset][wildcards.bone]]


def bone_of(dataset, structure):
    for bone, members in SHAPE_MODELS[dataset].items():
        for s, mirrored in members:
            if s == structure:
                return bone, mirrored
    raise ValueError(f"{structure} belongs to no shape model of {dataset}")


def structure_mirrored(wildcards):
    return bone_of(wildcards.dataset, wildcards.structure)[1]


def reference_subjects(wildcards):
    return passed_subjects(wildcards.dataset)


def reference_masks(wildcards):
    return expand(out("preprocess", "mask.nii.gz", subject="{subject}"), dataset=wildcards.dataset,
                  subject=passed_subjects(wildcards.dataset))


def structure_reference(wildcards):
    bone = bone_of(wildcards.dataset, wildcards.structure)[0]
    return {"reference": entity_path("registration", wildcards.dataset, "reference.nii.gz", bone=bone),
            "reference_landmarks": entity_path("landmarks", wildcards.dataset, "reference_landmarks.csv", bone=bone),
            "reference_truth": entity_path("landmarks", wildcards.dataset, "reference_truth.csv", bone=bone)}


def registration_reference(wildcards):
    return structure_reference(wildcards)["reference"]


def warp_inputs(wildcards):
    """Reference landmarks (and, on phantoms, the true landmarks of subject and reference)."""
    refs = structure_reference(wildcards)
    inputs = {"reference_landmarks": refs["reference_landmarks"], "reference_truth": refs["reference_truth"]}
    if wildcards.dataset in SYNTHETIC:
        inputs["truth"] = entity_path("synthetic", wildcards.dataset, "landmarks.csv", subject=wildcards.subject)
    return inputs


def truth_landmarks(wildcards):
    """Every passed subject's true landmarks (phantoms only; real data: none)."""
    if wildcards.dataset not in SYNTHETIC:
        return []
    return expand(entity_path("synthetic", wildcards.dataset, "landmarks.csv", subject="{subject}"),
                  subject=passed_subjects(wildcards.dataset))


def bone_instances(dataset, bone):
    return [(s, structure) for s in passed_subjects(dataset) for structure, _ in SHAPE_MODELS[dataset][bone]]


def bone_landmarks(wildcards):
    return [entity_path("landmarks", wildcards.dataset, "landmarks.csv", subject=s, structure=st)
            for s, st in bone_instances(wildcards.dataset, wildcards.bone)]


def registration_mem_mb(wildcards, input, attempt):
    """A registration holds the subject's mask a few times plus working-grid images."""
    return int(max(1500, 60 * input.size_mb) * attempt)


def selection_mem_mb(wildcards, input, attempt):
    """One mask at a time plus a coarse boolean row per subject."""
    return int((2000 + 2 * len(input.masks)) * attempt)


# ---- predictions and evaluation ----------------------------------------------------------------
def method_spec(wildcards):
    return dataset_cfg(wildcards)["methods"][wildcards.method]


def perturb_cfg(wildcards):
    return mskcfg.canonical(mskcfg.perturb_settings(dataset_cfg(wildcards), wildcards.method))


def prediction_path(wildcards):
    """A method's prediction for a subject: made by the workflow (perturbed, trained), or a user's file (files)."""
    spec = method_spec(wildcards)
    if spec["kind"] == "files":
        return spec["path"].format(subject=wildcards.subject)
    return entity_path("predictions", wildcards.dataset, "pred.nii.gz", subject=wildcards.subject,
                       method=wildcards.method)


def evaluated_subjects(dataset):
    """Subjects with a test role in the splits (each is scored once, by the fold that tests it)."""
    table = checkpoints.make_splits.get(dataset=dataset).output.splits
    frame = pd.read_csv(table, sep="\t", dtype={"split": str, "subject": str})
    return list(dict.fromkeys(frame.loc[frame["role"] == "test", "subject"]))


def eval_settings(wildcards):
    return mskcfg.canonical(mskcfg.evaluation_settings(dataset_cfg(wildcards)))


def eval_labels(wildcards):
    return mskcfg.canonical(dict(dataset_cfg(wildcards)["labels"]))


def eval_threads(wildcards):
    return mskcfg.evaluation_settings(dataset_cfg(wildcards))["threads"]


def method_tables(kind):
    def inputs(wildcards):
        return [entity_path("evaluation", wildcards.dataset, kind, method=m) for m in EVAL_METHODS[wildcards.dataset]]
    return inputs


def tables_cfg(wildcards):
    return mskcfg.canonical(mskcfg.table_settings(dataset_cfg(wildcards)))


def tables_metrics(wildcards):
    return mskcfg.table_metrics(dataset_cfg(wildcards))


def metric_tables_of(wildcards):
    return [entity_path("tables", wildcards.dataset, "table.md", metric=m) for m in tables_metrics(wildcards)]


def study_sizes(wildcards):
    return mskcfg.canonical(dict(dataset_cfg(wildcards)["evaluation"]["training_size"]))


def study_inputs(wildcards):
    return [entity_path("evaluation", wildcards.dataset, "metrics.csv", method=m) for m in study_sizes(wildcards)]


# ---- segmentation: weight maps, training, prediction ---------------------------------------------
def trained_spec(wildcards):
    return TRAINED[wildcards.dataset][wildcards.method]


def split_table(dataset):
    table = checkpoints.make_splits.get(dataset=dataset).output.splits
    return pd.read_csv(table, sep="\t", dtype={"split": str, "subject": str})


def fold_subjects(dataset, fold, role):
    frame = split_table(dataset)
    return frame.loc[(frame["split"] == fold) & (frame["role"] == role), "subject"].tolist()


def test_fold(wildcards):
    """The split whose test set holds the subject (each subject is predicted by that fold's model)."""
    frame = split_table(wildcards.dataset)
    folds = frame.loc[(frame["subject"] == wildcards.subject) & (frame["role"] == "test"), "split"].tolist()
    if not folds:
        raise ValueError(f"{wildcards.dataset}: subject {wildcards.subject} is in no split's test set")
    return folds[0]


def poor_mask_raw(wildcards):
    """The subject's poor mask (manifest column label_poor): needed by methods with `pretrain`."""
    path = manifest_row(wildcards).get("label_poor", "")
    if not isinstance(path, str) or not path:
        raise ValueError(f"{wildcards.dataset}: subject {wildcards.subject} has no label_poor in the manifest, "
                         "but a method of this dataset pre-trains on poor labels")
    return path


def poor_mask_image(wildcards):
    return manifest_row(wildcards)["image"]


def weight_map_cfg(wildcards):
    return mskcfg.canonical(dict(dataset_cfg(wildcards)["weight_maps"][wildcards.wmap]))


def method_cfg(wildcards):
    """Everything a trained method's jobs depend on (its own config entry, the labels, its weight map)."""
    spec = dataset_cfg(wildcards)["methods"][wildcards.method]
    wmap = trained_spec(wildcards).weight_map
    return mskcfg.canonical({"method": dict(spec), "labels": dict(dataset_cfg(wildcards)["labels"]),
                             "weight_map": dict(dataset_cfg(wildcards)["weight_maps"][wmap]) if wmap else None})


def _subject_files(dataset, subjects, kinds, wmap=None):
    files = {}
    for kind in kinds:
        if kind == "weight":
            files[kind] = [entity_path("weightmaps", dataset, "weight.nii.gz", subject=s, wmap=wmap) for s in subjects]
        else:
            files[kind] = [entity_path("preprocess", dataset, f"{kind}.nii.gz", subject=s) for s in subjects]
    return files


def training_inputs(wildcards):
    """Images, masks (and weight maps) of the fold's training and validation subjects, and pre-trained weights."""
    spec = trained_spec(wildcards)
    kinds = ["image", "mask"] + (["weight"] if spec.uses_weight_map() else [])
    inputs = {}
    for role in ("train", "val"):
        subjects = fold_subjects(wildcards.dataset, wildcards.fold, role)
        for kind, files in _subject_files(wildcards.dataset, subjects, kinds, spec.weight_map).items():
            inputs[f"{role}_{kind}"] = files
    if spec.pretrain is not None:
        inputs["pretrained"] = model_file(wildcards, "pretrained.pt")
    return inputs


def pretraining_inputs(wildcards):
    """Images and poor masks of the fold's training and validation subjects."""
    subjects = fold_subjects(wildcards.dataset, wildcards.fold, "train")
    subjects += fold_subjects(wildcards.dataset, wildcards.fold, "val")
    return _subject_files(wildcards.dataset, subjects, ["image", "poormask"])


def model_file(wildcards, suffix, fold=None, view=None):
    return entity_path("models", wildcards.dataset, suffix, method=wildcards.method, fold=fold or wildcards.fold,
                       view=view or wildcards.view)


def fold_subject_names(wildcards):
    return {role: fold_subjects(wildcards.dataset, wildcards.fold, role) for role in ("train", "val")}


def work_dir(wildcards):
    """Checkpoints of a training job (kept across a kill, so a re-run resumes; not a declared output)."""
    return entity_path(".work", wildcards.dataset, "", method=wildcards.method, fold=wildcards.fold,
                       view=wildcards.view, root="results/models").rstrip("_")


def training_threads(wildcards):
    return trained_spec(wildcards).threads


def training_runtime(wildcards, attempt):
    return trained_spec(wildcards).runtime_min * attempt


def training_mem_mb(wildcards, input, attempt):
    return int((3000 + 30 * input.size_mb) * attempt)


def fusion_inputs(wildcards):
    subjects = fold_subjects(wildcards.dataset, wildcards.fold, "val")
    inputs = _subject_files(wildcards.dataset, subjects, ["image", "mask"])
    views = trained_spec(wildcards).views
    inputs["models"] = [model_file(wildcards, "model.pt", view=v) for v in views]
    inputs["infos"] = [model_file(wildcards, "model.json", view=v) for v in views]
    return inputs


def prediction_inputs(wildcards):
    spec = trained_spec(wildcards)
    fold = test_fold(wildcards)
    inputs = {"image": out("preprocess", "image.nii.gz", subject="{subject}"),
              "models": [model_file(wildcards, "model.pt", fold=fold, view=v) for v in spec.views],
              "infos": [model_file(wildcards, "model.json", fold=fold, view=v) for v in spec.views]}
    if spec.view == "three_plane":
        inputs["fusion"] = entity_path("models", wildcards.dataset, "fusion.json", method=wildcards.method, fold=fold)
    return inputs


def inference_cfg(wildcards):
    spec = trained_spec(wildcards)
    return mskcfg.canonical({**spec.inference, "threads": spec.threads, "labels": dict(dataset_cfg(wildcards)["labels"])})


def segmentation_targets(wildcards):
    """Models, learning curves and fusion weights of every trained method that is evaluated."""
    targets = []
    for d, specs in TRAINED.items():
        evaluated = EVAL_METHODS.get(d, [])
        for m, spec in specs.items():
            if m not in evaluated:
                continue
            for f in fold_ids(d):
                targets += [entity_path("models", d, suffix, method=m, fold=f, view=v)
                            for v in spec.views for suffix in ("model.pt", "curve.png", "rounds.csv")]
                if spec.view == "three_plane":
                    targets.append(entity_path("models", d, "fusion.json", method=m, fold=f))
    return targets


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
        targets.append(entity_path("preprocess", d, "preprocess.tsv"))
    return targets


def landmark_targets(wildcards):
    """Reference tables and correspondence tables (known once QC is; not waiting for the splits)."""
    targets = []
    for d, models in SHAPE_MODELS.items():
        for bone in models:
            targets.append(entity_path("registration", d, "reference.tsv", bone=bone))
            targets.append(entity_path("landmarks", d, "correspondence.tsv", bone=bone))
    return targets


def shape_model_targets(wildcards):
    """Every fold's shape model and its quality report (known once the splits are)."""
    targets = []
    for d, models in SHAPE_MODELS.items():
        for bone in models:
            targets += expand(entity_path("shape", d, "{kind}", bone=bone, fold="{fold}"), fold=fold_ids(d),
                              kind=["model.npz", "quality.tsv", "quality.png", "modes.png"])
    return targets


def evaluation_targets(wildcards):
    """Every dataset's tables and plots (known once the splits are)."""
    targets = []
    for d in EVAL_METHODS:
        ds = config["datasets"][d]
        metrics = mskcfg.table_metrics(ds)
        targets.append(entity_path("tables", d, "tables.md"))
        targets += [entity_path("tables", d, suffix, metric=m) for m in metrics
                    for suffix in ("table.md", "table.csv", "table.tex", "stats.csv")]
        targets += [entity_path("plots", d, "boxplot.png", metric=m) for m in metrics]
        targets.append(entity_path("plots", d, "fov.png"))
        if ds["evaluation"]["training_size"]:
            targets += [entity_path("plots", d, "powerlaw.png", study="trainingsize", metric=m)
                        for m in ds["evaluation"]["training_size_metrics"]]
    return targets
