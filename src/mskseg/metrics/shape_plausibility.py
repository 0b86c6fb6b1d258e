"""Shape plausibility of one predicted bone, without a reference segmentation.

The predicted structure is registered to the shape model's reference exactly as the shape stage
registers a training subject (:func:`mskseg.registration.pipeline.register_to_reference`: affine, then
demons or ANTs, on the working grid; mirrored and trimmed as the model's members are), the reference
landmarks are carried onto it by that registration, ``T(x) = A(x + u(x))``, and the carried landmark set
``x`` is projected onto the model (:meth:`mskseg.shape.model.ShapeModel.project`):

* **Mahalanobis distance** ``sqrt(sum_k (b_k / sd_k)^2)`` over the model's ``K`` modes, ``b`` the
  coefficients (mm) and ``sd`` the modes' training standard deviations (mm): how unusual the shape is
  *inside* the model's span. Dimensionless; 0 for the mean shape and for a model without modes.
* **Reconstruction residual** ``|x_i - x_hat_i|`` (mm), ``x_hat`` the model's best approximation with all
  ``K`` modes (:meth:`~mskseg.shape.model.ShapeModel.reconstruct`) in the landmarks' own frame: how far the
  shape lies *outside* the span; mean and max over the landmarks.

The landmarks are projected in the model's frame: for a mirrored structure (the left member of a pair)
they stay in the mirrored world, as the shape stage's :func:`mskseg.shape.inputs.fold_shapes` has them.

A bad segmentation is what quality control reports, so nothing about the *prediction* raises:

=====================================  ==========================  ==========  ==============================
case                                   mahalanobis, residual_*     converged   reason
=====================================  ==========================  ==========  ==============================
structure empty                        NaN                         False       ``... is empty``
registration fails (SimpleITK error)   NaN                         False       ``registration failed: ...``
registration does not converge         NaN                         False       the registration's reason
carried landmarks not finite           NaN                         True        ``carried landmarks ...``
bone shorter than the trim             computed                    as found    ``""``; ``trim_short`` True
otherwise                              computed                    True        ``""``
=====================================  ==========================  ==========  ==============================

Inputs that do not fit each other (landmarks and model of different sizes, an empty reference) are
configuration errors and raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk

from mskseg.registration.fields import warp_points
from mskseg.registration.masks import EmptyStructureError, working_image
from mskseg.registration.pipeline import RegistrationSettings, register_to_reference
from mskseg.registration.trim import TrimSpec, trim_structure, trimmed_structure
from mskseg.shape.model import ShapeModel
from mskseg.volume import Volume

#: keys of :func:`shape_plausibility`'s result, in order
SHAPE_KEYS = ("mahalanobis", "residual_mean_mm", "residual_max_mm", "registration_dice", "converged", "n_modes",
              "trim_short", "reason")


def model_fit(points: np.ndarray, model: ShapeModel) -> dict[str, float]:
    """Mahalanobis distance (dimensionless) and reconstruction residual (mm) of a landmark set.

    Parameters
    ----------
    points
        ``(N, 3)`` landmarks in mm, corresponding to the model's points, in any pose (Procrustes
        alignment removes it) but not reflected relative to the model.
    model
        The shape model; all its ``K`` modes are used (``K = 0``: Mahalanobis 0, the residual is the
        distance to the aligned mean).

    Returns
    -------
    dict
        ``mahalanobis``, ``residual_mean_mm``, ``residual_max_mm``.
    """
    b, _ = model.project(points)
    sd = model.sd
    # a mode without variance (a hand-made model; fitted ones never keep one): 0 if b is 0 there, else inf
    ratio = np.where(sd > 0, b / np.where(sd > 0, sd, 1.0), np.where(b == 0, 0.0, np.inf))
    mahalanobis = float(np.sqrt(np.sum(ratio ** 2)))
    residual = np.linalg.norm(model.reconstruct(points) - np.asarray(points, dtype=float), axis=1)
    return {"mahalanobis": mahalanobis, "residual_mean_mm": float(residual.mean()),
            "residual_max_mm": float(residual.max())}


def _result(*, dice: float = float("nan"), converged: bool = False, n_modes: int, trim_short: bool = False,
            reason: str = "", fit: Mapping[str, float] | None = None) -> dict[str, Any]:
    fit = fit or {"mahalanobis": float("nan"), "residual_mean_mm": float("nan"), "residual_max_mm": float("nan")}
    return {**fit, "registration_dice": float(dice), "converged": bool(converged), "n_modes": int(n_modes),
            "trim_short": bool(trim_short), "reason": reason}


def reference_image(reference_mask: Volume, settings: RegistrationSettings, trim: TrimSpec | None = None) -> sitk.Image:
    """The reference's inside fraction on its working grid, as the shape stage's ``select_reference`` writes it.

    ``reference_mask``: the reference structure (non-zero inside), already mirrored where the model
    mirrors it. Trimming it again with the model's ``trim`` changes nothing when it is trimmed already
    (trimming is idempotent) and trims it when it is not. Raises ``ValueError`` when it is empty.
    """
    binary = reference_mask.with_array((np.asarray(reference_mask.array) != 0).astype(np.uint8))
    if not binary.array.any():
        raise ValueError("the reference mask is empty")
    if trim is not None:
        binary = trim_structure(binary, trim).mask
    return working_image(binary, settings.working_spacing_mm, settings.margin_mm)


def shape_plausibility(
    mask: Volume, structure_value: int, *, reference_mask: Volume, reference_landmarks: np.ndarray,
    model: ShapeModel, registration_settings: Mapping[str, Any] | RegistrationSettings, mirrored: bool = False,
    trim: Mapping[str, Any] | None = None, name: str | None = None,
) -> dict[str, Any]:
    """Register one predicted structure to the model's reference and score its carried landmarks on the model.

    Parameters
    ----------
    mask
        The predicted label map (any grid; mm, LPS world).
    structure_value
        The structure's label value in ``mask``.
    reference_mask
        The model's reference structure, binary (non-zero inside) and already mirrored when the model
        mirrors it: the mask the shape stage's ``select_reference`` rule writes.
    reference_landmarks
        ``(N, 3)`` landmarks (mm) on the reference, in the model's point order (``reference_landmarks``
        rule); ``N`` must be the model's number of points.
    model
        The shape model (:func:`mskseg.shape.storage.load_shape_model`).
    registration_settings
        The dataset's ``shape`` block (or its ``registration`` part, :func:`mskseg.workflow.settings.shape_settings`):
        backend, working spacing, margin, ``min_dice``, ``max_folding``, affine, demons, ants. Unknown keys
        are ignored.
    mirrored
        The structure is the mirrored member of its model (a left member of a pair).
    trim
        The model's trim entry (``{length_mm, from}``); None takes ``registration_settings["trim"]`` when
        present (``shape_settings(dataset, "registration", model)`` carries it), else no trimming.
    name
        The structure's name, for the reasons (default: its label value).

    Returns
    -------
    dict
        ``mahalanobis`` (dimensionless), ``residual_mean_mm`` and ``residual_max_mm`` (mm),
        ``registration_dice`` (Dice after warping on the working grid), ``converged`` (bool), ``n_modes``
        (the model's ``K``), ``trim_short`` (the bone is shorter than the trim, so the model lacks part
        of it) and ``reason`` (``""`` when assessed, else why not). See the module docstring for the
        edge cases: none of them raises.

    Raises
    ------
    ValueError
        ``reference_landmarks`` not ``(model.n_points, 3)``, an empty reference mask or invalid settings.
    """
    settings = (registration_settings if isinstance(registration_settings, RegistrationSettings)
                else RegistrationSettings.from_dict(registration_settings))
    if trim is None and not isinstance(registration_settings, RegistrationSettings):
        trim = registration_settings.get("trim")
    spec = TrimSpec.from_dict(trim)
    points = np.asarray(reference_landmarks, dtype=float)
    if points.shape != (model.n_points, 3):
        raise ValueError(f"reference landmarks have shape {points.shape}, the model has {model.n_points} points")
    label = name or f"label {int(structure_value)}"
    k = model.n_modes
    fixed = reference_image(reference_mask, settings, spec)
    try:
        prepared = trimmed_structure(mask, int(structure_value), mirror=mirrored, trim=spec, name=name)
    except EmptyStructureError:
        return _result(n_modes=k, reason=f"{label} is empty")
    try:
        result = register_to_reference(fixed, prepared.mask, settings)
    except (RuntimeError, ValueError) as err:  # SimpleITK raises RuntimeError on degenerate images
        return _result(n_modes=k, trim_short=prepared.short, reason=f"registration failed: {err}".strip())
    dice = float(result.record["dice"])
    if not result.converged:
        return _result(dice=dice, n_modes=k, trim_short=prepared.short,
                       reason=f"registration did not converge: {result.record['reason']}")
    carried = warp_points(points, result.affine, result.field)  # model frame: a mirrored member stays mirrored
    if not np.all(np.isfinite(carried)):
        return _result(dice=dice, converged=True, n_modes=k, trim_short=prepared.short,
                       reason="carried landmarks are not finite")
    return _result(dice=dice, converged=True, n_modes=k, trim_short=prepared.short, fit=model_fit(carried, model))


__all__ = ["SHAPE_KEYS", "model_fit", "reference_image", "shape_plausibility"]
