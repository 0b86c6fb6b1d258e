"""Evaluation of statistical shape models: compactness, generalisation, specificity.

The three measures of Davies et al. (IEEE TMI 2002) as used by Styner et al. (2003), as
functions of the number of modes ``m``:

* *compactness*: cumulative fraction of the total variance captured by ``m`` modes;
* *generalisation*: leave-one-out error of reconstructing an unseen shape with ``m``
  modes, as the mean point-to-corresponding-point distance in mm (lower is better);
* *specificity*: mean point distance in mm from random model instances (``m`` modes,
  Gaussian coefficients) to the nearest training shape (lower is better).

Distances are between corresponding points (no closest-point search), averaged over
points; standard deviations are sample SDs (divisor ``count - 1``; 0 for one value).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mskseg.shape.model import ShapeModel
from mskseg.shape.pca import fit_shape_model
from mskseg.shape.procrustes import as_shapes, fit_similarity

GENERALISATION_COLUMNS = ("n_modes", "generalisation_mm", "generalisation_sd_mm")
SPECIFICITY_COLUMNS = ("n_modes", "specificity_mm", "specificity_sd_mm")
QUALITY_COLUMNS = ("n_modes", "compactness", "generalisation_mm", "generalisation_sd_mm",
                   "specificity_mm", "specificity_sd_mm")


def _sd(values: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.std(values, axis=axis, ddof=1) if values.shape[axis] > 1 else np.zeros(np.delete(values.shape, axis))


def _mode_limit(available: int, max_modes: int | None) -> int:
    if max_modes is None:
        return available
    if int(max_modes) != max_modes or max_modes < 1:
        raise ValueError(f"max_modes must be an integer >= 1, got {max_modes}")
    return min(available, int(max_modes))


def mean_point_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance between corresponding points of ``(..., N, 3)`` arrays, mm."""
    return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean(axis=-1)


def compactness(model: ShapeModel) -> np.ndarray:
    """Cumulative explained variance ratio for ``1..K`` modes, ``(K,)``, non-decreasing.

    Reaches 1 at ``K`` when all non-trivial modes were kept.
    """
    return model.cumulative_ratio


def generalisation(shapes: Any, *, scale: bool = True, max_modes: int | None = None) -> pd.DataFrame:
    """Leave-one-out generalisation error, mm.

    For each shape a model is fitted to the others (``scale`` as given); the left-out shape
    is reconstructed with ``m`` modes (:meth:`~mskseg.shape.model.ShapeModel.reconstruct`,
    so in its own frame) and the error is the mean distance to its points. ``m`` runs over
    ``1 .. min(max_modes, n - 2)``; a leave-one-out model with fewer non-trivial modes
    than ``m`` uses all it has.

    Parameters
    ----------
    shapes
        ``(n, N, 3)`` corresponding points in mm, ``n >= 3``.
    scale
        Procrustes with scaling in every leave-one-out model.
    max_modes
        Largest ``m`` (>= 1); None for ``n - 2``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`GENERALISATION_COLUMNS`, one row per ``m``: mean and SD over the
        left-out shapes.
    """
    arr = as_shapes(shapes)
    n = arr.shape[0]
    if n < 3:
        raise ValueError(f"generalisation needs at least 3 shapes (leave-one-out models of >= 2), got {n}")
    limit = _mode_limit(n - 2, max_modes)
    errors = np.empty((n, limit))
    subjects = [str(i) for i in range(n)]
    for i in range(n):
        keep = np.arange(n) != i
        model = fit_shape_model(arr[keep], [s for s, k in zip(subjects, keep, strict=True) if k], scale=scale)
        b, transform = model.project(arr[i])
        for m in range(1, limit + 1):
            recon = model.instance(b[:m], transform)
            errors[i, m - 1] = mean_point_distance(recon, arr[i])
    return pd.DataFrame({
        "n_modes": np.arange(1, limit + 1),
        "generalisation_mm": errors.mean(axis=0),
        "generalisation_sd_mm": _sd(errors),
    }, columns=list(GENERALISATION_COLUMNS))


def align_to_model(model: ShapeModel, shapes: Any) -> np.ndarray:
    """Shapes ``(n, N, 3)`` aligned onto the model mean, in the model frame (mm).

    Each is fitted with :func:`~mskseg.shape.procrustes.fit_similarity` (scaling as the
    model was built), so any shapes can be compared, not only the training ones.
    """
    arr = as_shapes(shapes)
    if arr.shape[1] != model.n_points:
        raise ValueError(f"shapes have {arr.shape[1]} points, the model {model.n_points}")
    return np.stack([fit_similarity(s, model.mean, scale=model.scale).apply(s) for s in arr])


def specificity(model: ShapeModel, shapes: Any, *, n_samples: int = 200, seed: int = 0,
                max_modes: int | None = None) -> pd.DataFrame:
    """Specificity: distance from random model instances to the nearest given shape, mm.

    ``n_samples`` standard normal vectors ``z`` are drawn once with
    ``numpy.random.default_rng(seed)``; for ``m`` modes the instance has coefficients
    ``z[:m] * sd[:m]`` (so ``b_k ~ N(0, variances[k])``) and lies in the model frame. Each
    of ``shapes`` (normally the training shapes) is aligned onto the model mean
    (:func:`align_to_model`); an instance's error is its mean point distance to the
    nearest of them.

    Parameters
    ----------
    model
        The shape model.
    shapes
        ``(n, N, 3)`` shapes in their own frames, mm.
    n_samples
        Instances per ``m`` (>= 1).
    seed
        Seed; the result depends only on it and the inputs.
    max_modes
        Largest ``m`` (>= 1); None for ``K``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SPECIFICITY_COLUMNS`, one row per ``m = 1 .. min(max_modes, K)``
        (empty for a model without modes): mean and SD over the instances.
    """
    if int(n_samples) != n_samples or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples}")
    targets = align_to_model(model, shapes)
    limit = _mode_limit(model.n_modes, max_modes)
    z = np.random.default_rng(seed).standard_normal((int(n_samples), limit))
    flat_modes = model.modes[:limit].reshape(limit, 3 * model.n_points)
    means, sds = [], []
    for m in range(1, limit + 1):
        offsets = (z[:, :m] * model.sd[:m]) @ flat_modes[:m]
        samples = model.mean + offsets.reshape(-1, model.n_points, 3)
        nearest = np.full(len(samples), np.inf)
        for target in targets:
            nearest = np.minimum(nearest, mean_point_distance(samples, target))
        means.append(float(nearest.mean()))
        sds.append(float(_sd(nearest)))
    return pd.DataFrame({
        "n_modes": np.arange(1, limit + 1),
        "specificity_mm": np.array(means, dtype=float),
        "specificity_sd_mm": np.array(sds, dtype=float),
    }, columns=list(SPECIFICITY_COLUMNS))


def quality_table(model: ShapeModel, shapes: Any, *, n_samples: int = 200, seed: int = 0,
                  max_modes: int | None = None) -> pd.DataFrame:
    """Compactness, generalisation and specificity for ``m = 1 .. min(max_modes, K)`` modes.

    Parameters
    ----------
    model
        Model fitted to ``shapes``.
    shapes
        ``(n, N, 3)`` training shapes in their own frames, mm; generalisation refits
        leave-one-out models to them with the model's ``scale``.
    n_samples, seed
        See :func:`specificity`.
    max_modes
        Largest number of modes in the table; None for ``K``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`QUALITY_COLUMNS`. Generalisation is NaN where it is undefined:
        for ``m > n - 2``, and everywhere with fewer than 3 shapes.
    """
    arr = as_shapes(shapes)
    limit = _mode_limit(model.n_modes, max_modes)
    table = pd.DataFrame({"n_modes": np.arange(1, limit + 1),
                          "compactness": compactness(model)[:limit]})
    if arr.shape[0] >= 3 and limit > 0:
        gen = generalisation(arr, scale=model.scale, max_modes=limit)
    else:
        gen = pd.DataFrame(columns=list(GENERALISATION_COLUMNS))
    spec = specificity(model, arr, n_samples=n_samples, seed=seed, max_modes=max_modes)
    table = table.merge(gen.astype({"n_modes": int}), on="n_modes", how="left")
    table = table.merge(spec, on="n_modes", how="left")
    for column in QUALITY_COLUMNS[1:]:
        table[column] = table[column].astype(float)
    return table[list(QUALITY_COLUMNS)]
