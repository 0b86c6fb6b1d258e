"""Corresponding landmarks from registrations: sample on the reference, carry to subjects, score.

* The reference landmarks are spread evenly over the reference structure's surface
  (marching cubes, area-uniform candidates, farthest-point selection). Surface that is only
  there because the field of view cuts the bone (the caps where the structure touches the
  volume border) is left out: it is not anatomy and moves with the scan, not the bone. So is the
  cut of a trimmed structure (:mod:`mskseg.registration.trim`): the faces near its cut plane.
* A subject's landmarks are the reference landmarks carried by its registration
  ``T(x) = A(x + u(x))`` (:mod:`mskseg.registration.fields`); for a mirrored structure they
  are reflected back into the subject's own world.
* Quality: each landmark's distance to the subject's own mask surface, and on phantoms the
  distance to the true corresponding point (the phantom's landmark with the same index,
  carried from the reference's true landmarks by the same registration).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mskseg.io.tables import read_table
from mskseg.landmarks.surface import distance_summary, mask_surface, sample_surface, surface_distance
from mskseg.registration.fields import warp_points
from mskseg.registration.masks import mirror_points
from mskseg.registration.trim import TrimSpec, cut_margin_mm, point_depths
from mskseg.volume import Volume


def interior_faces(vertices: np.ndarray, faces: np.ndarray, mask: Volume, tol: float = 0.25) -> np.ndarray:
    """Faces that are not caps on the volume border (where the field of view cuts the structure).

    Marching cubes of a mask padded by one voxel puts the cap of a structure that touches
    the border at index ``-0.5`` or ``n - 0.5``; a face with a vertex that far out is a cap.
    """
    index = mask.world_to_index(vertices)
    shape = np.asarray(mask.shape, dtype=float)
    outside = np.any((index < -tol) | (index > shape - 1 + tol), axis=1)
    return faces[~outside[faces].any(axis=1)]


def uncut_faces(vertices: np.ndarray, faces: np.ndarray, mask: Volume, trim: TrimSpec) -> np.ndarray:
    """Faces away from the cut of a structure trimmed by ``trim``: a face with a vertex deeper than
    ``length_mm - cut_margin_mm`` below the joint end (:func:`mskseg.registration.trim.cut_margin_mm`)
    is on the cut or in the ring of at most one voxel next to it."""
    depth = point_depths(vertices, mask, trim)
    near = depth > trim.length_mm - cut_margin_mm(mask, trim)
    return faces[~near[faces].any(axis=1)]


def sample_reference(mask: Volume, n: int, *, seed: int = 0, trim: TrimSpec | None = None) -> np.ndarray:
    """``n`` points (mm) spread evenly over the anatomical surface of a binary structure (trimmed by
    ``trim``, if given: then nothing is sampled on the cut)."""
    vertices, faces = mask_surface(mask)
    kept = interior_faces(vertices, faces, mask)
    if trim is not None:
        kept = uncut_faces(vertices, kept, mask, trim)
    if len(kept) == 0:
        raise ValueError("the structure's whole surface lies on the volume border; nothing to sample")
    return sample_surface(vertices, kept, int(n), seed=int(seed))


def carry_to_subject(points: np.ndarray, affine: sitk.Transform, field_image: sitk.Image | None,
                     mirrored: bool) -> np.ndarray:
    """Reference points carried to the subject's world (reflected back for a mirrored structure)."""
    warped = warp_points(points, affine, field_image)
    return mirror_points(warped) if mirrored else warped


def carry_frame(landmarks: pd.DataFrame, affine: sitk.Transform, field_image: sitk.Image | None,
                mirrored: bool) -> pd.DataFrame:
    """A landmark table (``index, x, y, z``) carried to the subject; indices kept."""
    xyz = carry_to_subject(landmarks[["x", "y", "z"]].to_numpy(dtype=float), affine, field_image, mirrored)
    return pd.DataFrame({"index": landmarks["index"].to_numpy(dtype=int), "x": xyz[:, 0], "y": xyz[:, 1],
                         "z": xyz[:, 2]})


def true_points(truth: pd.DataFrame, structure: str, *, mirrored: bool = False) -> pd.DataFrame:
    """A phantom's true landmarks of one structure (``index, x, y, z``), reflected if asked."""
    rows = truth[truth["structure"] == structure].sort_values("index")
    if rows.empty:
        raise ValueError(f"no true landmarks for structure {structure!r}")
    xyz = rows[["x", "y", "z"]].to_numpy(dtype=float)
    if mirrored:
        xyz = mirror_points(xyz)
    return pd.DataFrame({"index": rows["index"].to_numpy(dtype=int), "x": xyz[:, 0], "y": xyz[:, 1],
                         "z": xyz[:, 2]})


def reference_truth(subject: str, structure: str, mirrored: bool, truth_files: Mapping[str, object], *,
                    read: Callable[[object], pd.DataFrame] = read_table) -> pd.DataFrame:
    """The reference instance's own true landmarks (``index, x, y, z``) from its subject's file among
    ``truth_files`` (subject -> the phantom's landmark table); an empty table when it has none (real data)."""
    if subject not in truth_files:
        return pd.DataFrame(columns=["index", "x", "y", "z"])
    return true_points(read(truth_files[subject]), structure, mirrored=mirrored)


def truth_errors(carried: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """Distances (mm) between carried and true points with the same ``index``."""
    merged = carried.merge(truth, on="index", suffixes=("_c", "_t"))
    if merged.empty:
        return np.array([])
    a = merged[["x_c", "y_c", "z_c"]].to_numpy(dtype=float)
    b = merged[["x_t", "y_t", "z_t"]].to_numpy(dtype=float)
    return np.linalg.norm(a - b, axis=1)


def quality_record(points: np.ndarray, mask: Volume, label: int, *,
                   truth_error: np.ndarray | None = None) -> dict[str, Any]:
    """Surface-distance (and truth-error) summary of one subject's landmarks, in mm."""
    record: dict[str, Any] = {}
    dist = surface_distance(points, mask, label=label)
    record.update({f"surface_{k}": float(v) for k, v in distance_summary(dist).items()})
    record["surface_mean_voxels"] = float(np.mean(dist) / np.mean(mask.spacing)) if len(dist) else float("nan")
    if truth_error is not None:
        record.update({f"truth_{k}": float(v) for k, v in distance_summary(truth_error).items()})
        record["truth_n"] = len(truth_error)
    return record
