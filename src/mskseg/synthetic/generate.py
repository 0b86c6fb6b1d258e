"""Deterministic synthetic subjects (image, labels, landmarks) with known ground truth.

A subject is a pure function of ``(kind, index, seed)`` for its anatomy and appearance,
and of the grid (``shape``, ``spacing``) for the sampled image: the random streams are
children of ``numpy.random.SeedSequence([seed, index, kind_code])`` (anatomy, appearance,
image noise, label degradation), so the same subject at two resolutions is the same
anatomy. The field of view is centred on the anatomy's centre (knee: joint centre; hip:
midpoint of the femoral head centres; ankle: the middle of the talar dome's axis), which the
subject's small random pose puts at world ``params["anatomy"]["pose"]["translation_mm"]`` (ITK/LPS
frame, mm). With ``fov_jitter_mm`` the field of view is shifted along the world SI axis by a draw
from a fifth stream of the same seed sequence (:func:`fov_shift_mm`), so the shafts are cut at
heights that vary between subjects; the other streams, and so the anatomy, appearance and noise,
are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mskseg.synthetic import ankle, hip, knee
from mskseg.synthetic.degrade import degrade_labels
from mskseg.synthetic.landmarks import MODEL_CLASSES, compute_landmarks
from mskseg.synthetic.render import centred_origin, render
from mskseg.volume import Volume

KINDS = ("knee", "hip", "ankle")
LABELS = {"knee": dict(knee.LABELS), "hip": dict(hip.LABELS), "ankle": dict(ankle.LABELS)}
LANDMARK_STRUCTURES = {
    "knee": knee.LANDMARK_STRUCTURES,
    "hip": hip.LANDMARK_STRUCTURES,
    "ankle": ankle.LANDMARK_STRUCTURES,
}
KIND_CODES = {"knee": 1, "hip": 2, "ankle": 3}
_MODULES = {"knee": knee, "hip": hip, "ankle": ankle}
#: label-degradation settings per kind (see :func:`mskseg.synthetic.degrade.degrade_labels`)
DEGRADE = {
    "knee": {"dilate_vox": (0.4, 0.8), "noise_vox": 0.4, "gap_mm": 1.4, "n_drop": (1, 3)},
    "hip": {"dilate_vox": (0.6, 1.1), "noise_vox": 0.5, "gap_mm": 4.0, "n_drop": (2, 4)},
    "ankle": {"dilate_vox": (0.5, 1.0), "noise_vox": 0.45, "gap_mm": 3.5, "n_drop": (1, 3)},
}


@dataclass
class SyntheticSubject:
    """One synthetic subject.

    Attributes
    ----------
    image
        ``float32``; knee and ankle: MR-like arbitrary units (about 0..1000), hip: Hounsfield units.
    mask
        ``uint8`` labels per ``LABELS[kind]``, same geometry as ``image``.
    poor_mask
        Degraded labels (dilated, noisy, gaps closed, dropped slices), or ``None``.
    landmarks
        Columns ``structure``, ``index``, ``x``, ``y``, ``z`` (world mm, ITK/LPS).
    params
        JSON-serialisable parameters: ``kind``, ``index``, ``seed``, ``anatomy`` (mm,
        degrees), ``appearance`` and, with poor labels, ``degrade``.
    """

    image: Volume
    mask: Volume
    poor_mask: Volume | None
    landmarks: pd.DataFrame
    params: dict


def subject_streams(kind: str, index: int, seed: int) -> list[np.random.SeedSequence]:
    """The four child seed sequences (anatomy, appearance, noise, degradation) of a subject."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if int(index) < 0 or int(seed) < 0:
        raise ValueError("index and seed must be non-negative integers")
    return np.random.SeedSequence([int(seed), int(index), KIND_CODES[kind]]).spawn(4)


def fov_shift_mm(kind: str, index: int, seed: int, jitter_mm: float) -> float:
    """The subject's shift (mm) of the field of view along world +z (superior): uniform in
    ``[-jitter_mm, jitter_mm]``, from the fifth child of the subject's seed sequence; 0 for no jitter."""
    if not jitter_mm >= 0:
        raise ValueError(f"fov_jitter_mm must be >= 0, got {jitter_mm!r}")
    if jitter_mm == 0:
        return 0.0
    subject_streams(kind, index, seed)  # checks the arguments
    stream = np.random.SeedSequence([int(seed), int(index), KIND_CODES[kind]]).spawn(5)[4]
    return float(np.random.default_rng(stream).uniform(-jitter_mm, jitter_mm))


def subject_params(kind: str, index: int, seed: int = 0) -> dict:
    """The anatomy and appearance parameters of a subject (no image is made)."""
    ss = subject_streams(kind, index, seed)
    mod = _MODULES[kind]
    return {
        "kind": kind,
        "index": int(index),
        "seed": int(seed),
        "anatomy": mod.sample_anatomy(np.random.default_rng(ss[0])),
        "appearance": mod.sample_appearance(np.random.default_rng(ss[1])),
    }


def build_model(params: dict) -> object:
    """The analytic phantom model (``KneeModel`` / ``HipModel`` / ``AnkleModel``) of a parameter dict."""
    return MODEL_CLASSES[params["kind"]](params["anatomy"], params["appearance"])


def default_grid(kind: str) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """Default (demo) ``shape`` and ``spacing`` of a kind, ITK order."""
    mod = _MODULES[kind]
    return mod.DEFAULT_SHAPE, mod.DEFAULT_SPACING


def anatomy_centre(params: dict) -> tuple[float, float, float]:
    """World position (mm) of the anatomy's centre, the default centre of the field of view."""
    t = params["anatomy"]["pose"]["translation_mm"]
    return (float(t[0]), float(t[1]), float(t[2]))


def render_subject(
    params: dict,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    centre: tuple[float, float, float] | None = None,
    noise_seed: np.random.SeedSequence | int = 0,
) -> tuple[Volume, Volume]:
    """Image and labels of a parameter dict on a grid centred on world ``centre`` (mm;
    default: :func:`anatomy_centre`)."""
    kind = params["kind"]
    direction = _MODULES[kind].DIRECTION
    centre = anatomy_centre(params) if centre is None else centre
    origin = centred_origin(shape, spacing, direction, centre)
    model = build_model(params)
    return render(model, shape, spacing, origin, direction, np.random.default_rng(noise_seed))  # type: ignore[arg-type]


def generate_subject(
    kind: str,
    index: int,
    *,
    seed: int = 0,
    shape: tuple[int, int, int] | None = None,
    spacing: tuple[float, float, float] | None = None,
    n_landmarks: int = 200,
    poor_labels: bool = False,
    fov_jitter_mm: float = 0.0,
) -> SyntheticSubject:
    """Generate one deterministic synthetic subject.

    Parameters
    ----------
    kind
        ``"knee"`` (sagittal DESS-like MRI, direction columns ``[e_x, -e_z, e_y]``),
        ``"hip"`` (axial CT in HU, identity direction) or ``"ankle"`` (sagittal PD/DESS-like
        MRI, the knee's direction).
    index, seed
        Non-negative integers; the subject is a pure function of the arguments.
    shape, spacing
        Grid size and spacing (mm), ITK order ``(i, j, k)``; defaults per kind
        (knee ``(64, 112, 112)`` at ``(1.6, 1.25, 1.25)``, hip ``(96, 72, 96)`` at
        ``(3.0, 2.6, 2.6)``, ankle ``(56, 84, 84)`` at ``(1.8, 1.75, 1.75)``). The grid is
        centred on the anatomy (:func:`anatomy_centre`).
    n_landmarks
        Corresponding surface landmarks per structure of ``LANDMARK_STRUCTURES[kind]``.
    poor_labels
        Also make ``poor_mask``, a degraded label map.
    fov_jitter_mm
        Shift the field of view along world SI by a seeded draw in ``[-fov_jitter_mm, fov_jitter_mm]``
        (:func:`fov_shift_mm`, recorded as ``params["fov_shift_mm"]``); 0 (default) keeps it centred
        and the subject byte-identical to one made without the argument.
    """
    ss = subject_streams(kind, index, seed)
    params = subject_params(kind, index, seed)
    dshape, dspacing = default_grid(kind)
    shape = tuple(int(s) for s in (shape or dshape))  # type: ignore[assignment]
    spacing = tuple(float(s) for s in (spacing or dspacing))  # type: ignore[assignment]
    if len(shape) != 3 or len(spacing) != 3 or min(shape) < 1 or min(spacing) <= 0:
        raise ValueError(f"bad grid: shape {shape}, spacing {spacing}")
    centre = None
    if fov_jitter_mm:
        params["fov_shift_mm"] = fov_shift_mm(kind, index, seed, fov_jitter_mm)
        centre = tuple(np.add(anatomy_centre(params), (0.0, 0.0, params["fov_shift_mm"])))
    image, mask = render_subject(params, shape, spacing, centre=centre, noise_seed=ss[2])  # type: ignore[arg-type]
    model = build_model(params)
    lm = compute_landmarks(kind, model, int(n_landmarks))
    poor = None
    if poor_labels:
        poor, dparams = degrade_labels(mask, np.random.default_rng(ss[3]), **DEGRADE[kind])
        params["degrade"] = dparams
    return SyntheticSubject(image=image, mask=mask, poor_mask=poor, landmarks=lm, params=params)
