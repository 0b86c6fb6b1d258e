"""The one helper that names every file the workflow writes, and the names built on it.

``results/<stage>/<dataset>/sub-<id>_<key>-<value>_<suffix>`` (entity style, after BIDS):
the stage is the folder, entities (subject first, then the others in the order given)
and a suffix with its file ending name the file. Values may be Snakemake wildcards
such as ``"{subject}"``. Logs go to ``logs/<stage>/<dataset>/<name>.log``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def entity_path(stage: str, dataset: str, suffix: str, *, subject: str | None = None,
                root: str = "results", **entities: str) -> str:
    """Path of one output file.

    >>> entity_path("preprocess", "knee", "image.nii.gz", subject="k01")
    'results/preprocess/knee/sub-k01_image.nii.gz'
    >>> entity_path("splits", "knee", "splits.tsv")
    'results/splits/knee/splits.tsv'
    >>> entity_path("train", "knee", "model.pt", fold="{fold}")
    'results/train/knee/fold-{fold}_model.pt'
    """
    parts = []
    if subject is not None:
        parts.append(f"sub-{subject}")
    parts.extend(f"{key}-{value}" for key, value in entities.items())
    parts.append(suffix)
    return f"{root}/{stage}/{dataset}/" + "_".join(parts)


def out(stage: str, suffix: str, subject: str | None = None, **entities: str) -> str:
    """A rule's output pattern: :func:`entity_path` with the ``{dataset}`` wildcard.

    >>> out("preprocess", "mask.nii.gz", subject="{subject}")
    'results/preprocess/{dataset}/sub-{subject}_mask.nii.gz'
    """
    return entity_path(stage, "{dataset}", suffix, subject=subject, **entities)


def log_path(stage: str, name: str = "{subject}") -> str:
    """A rule's log pattern.

    >>> log_path("qc")
    'logs/qc/{dataset}/{subject}.log'
    """
    return f"logs/{stage}/{{dataset}}/{name}.log"


def optional_input(inputs: Any, name: str) -> Path | None:
    """The job's named input ``name`` as a path, or None when the rule's input function left it out
    (``inputs``: Snakemake's ``snakemake.input``; ``name in inputs`` would test the file names, not the keys)."""
    value = inputs.get(name)
    return Path(value) if value else None


def model_path(dataset: str, suffix: str, *, method: str, fold: str, view: str | None = None) -> str:
    """A trained model's file (per method, fold and, for all but the fusion weights, view).

    >>> model_path("knee", "model.pt", method="unet2d", fold="0", view="sagittal")
    'results/models/knee/method-unet2d_fold-0_view-sagittal_model.pt'
    """
    entities = {"method": method, "fold": fold} | ({"view": view} if view is not None else {})
    return entity_path("models", dataset, suffix, **entities)


def training_work_dir(dataset: str, method: str, fold: str, view: str) -> str:
    """Checkpoints of a training job (kept across a kill so a re-run resumes; not a declared output).

    >>> training_work_dir("knee", "unet2d", "0", "sagittal")
    'results/models/.work/knee/method-unet2d_fold-0_view-sagittal'
    """
    return entity_path(".work", dataset, "", method=method, fold=fold, view=view, root="results/models").rstrip("_")


__all__ = ["entity_path", "log_path", "model_path", "optional_input", "out", "training_work_dir"]
