"""Gather the landmark sets that build one fold's shape model.

A fold's model uses the subjects whose split role (e.g. ``train``) is among ``roles``, whose
registration converged and whose bone the field of view does not cut shorter than the trim
(``trim_short``, :mod:`mskseg.registration.trim`: such a bone lacks anatomy the others have, and
its landmarks there would be the registration's extrapolation). Landmarks of mirrored structures
(the left member of a left/right pair) are reflected back into the model's frame so that both
sides are one shape family (a reflection is not something Procrustes may remove).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mskseg.io.landmarks import read_landmarks_csv
from mskseg.registration.masks import mirror_points
from mskseg.registration.trim import short_message


def _truthy(value: object) -> bool:
    """A table cell read back as text or bool: ``True``/``true``/``1``."""
    return str(value).lower() in ("true", "1")


def fold_shapes(correspondence: pd.DataFrame, splits: pd.DataFrame, landmark_files: Sequence[Path], *,
                fold: str, roles: Sequence[str]) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """``(keys, shapes (n, N, 3), left_out)`` of one fold.

    ``keys`` are ``subject:structure``; ``left_out`` maps each instance not used to why.
    Landmark files are found by name (``sub-<subject>_structure-<structure>_landmarks.csv``).
    """
    fold_rows = splits[splits["split"].astype(str) == str(fold)]
    if fold_rows.empty:
        raise ValueError(f"fold {fold!r} is not in the splits table")
    role = dict(zip(fold_rows["subject"].astype(str), fold_rows["role"].astype(str), strict=True))
    files = {Path(p).name: Path(p) for p in landmark_files}
    keys: list[str] = []
    shapes: list[np.ndarray] = []
    left_out: dict[str, str] = {}
    for _, row in correspondence.iterrows():
        subject, structure = str(row["subject"]), str(row["structure"])
        key = f"{subject}:{structure}"
        if role.get(subject) not in roles:
            left_out[key] = f"role {role.get(subject, 'none')} in fold {fold}"
            continue
        if not _truthy(row["converged"]):
            left_out[key] = f"registration did not converge: {row.get('reason', '')}"
            continue
        if _truthy(row.get("trim_short", False)):
            left_out[key] = short_message(row)
            continue
        name = f"sub-{subject}_structure-{structure}_landmarks.csv"
        if name not in files:
            raise ValueError(f"no landmark file {name} among the inputs")
        points = read_landmarks_csv(files[name]).sort_values("index")[["x", "y", "z"]].to_numpy(dtype=float)
        mirrored = _truthy(row["mirrored"])
        shapes.append(mirror_points(points) if mirrored else points)
        keys.append(key)
    if len(shapes) < 3:
        raise ValueError(f"fold {fold}: only {len(shapes)} usable shapes (need >= 3 for a model and its "
                         f"leave-one-out quality); left out: {left_out}")
    sizes = {s.shape for s in shapes}
    if len(sizes) != 1:
        raise ValueError(f"fold {fold}: landmark sets differ in size {sorted(sizes)}")
    return keys, np.stack(shapes), left_out
