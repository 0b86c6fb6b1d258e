"""The one helper that names every file the workflow writes.

``results/<stage>/<dataset>/sub-<id>_<key>-<value>_<suffix>`` (entity style, after BIDS):
the stage is the folder, entities (subject first, then the others in the order given)
and a suffix with its file ending name the file. Values may be Snakemake wildcards
such as ``"{subject}"``.
"""

from __future__ import annotations

import re

#: subject ids become file names and wildcards: letters, digits, '-', '_', '.', not starting with '.' or '-'
SUBJECT_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_SUBJECT_RE = re.compile(rf"^{SUBJECT_ID_PATTERN}$")


def is_valid_subject_id(value: str) -> bool:
    """True if ``value`` may be used as a subject id (file names and wildcards)."""
    return bool(_SUBJECT_RE.match(value)) and ".." not in value


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
