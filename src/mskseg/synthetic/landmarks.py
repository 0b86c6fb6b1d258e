"""Corresponding surface landmarks (ground-truth correspondences) of synthetic bones.

A landmark is defined once per kind, on the mean-parameter template, as a primitive of
the structure (e.g. ``condyle_medial``) and a parametric coordinate on it (a unit
direction for ellipsoids and spheres, ``(t, cos psi, sin psi)`` for capsules): the
template candidates are spread over every primitive, kept where they lie on the exposed
bone surface (after projection they moved less than :data:`EXPOSED_MM`) inside the
structure's landmark region, and ``n`` of them are chosen by farthest-point sampling
(so the first ``m < n`` are the landmarks for ``n = m``).

For a subject the same parametric point is mapped through that subject's primitive
and pose, then projected onto the subject's zero level set by Newton steps
``p <- p - F(p) grad F / |grad F|^2`` (central-difference gradient of the analytic SDF).
The landmark index is therefore the same anatomical point in every subject, and its
position is a smooth function of the subject's parameters and independent of any grid.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np
import pandas as pd

from mskseg.synthetic import hip, knee

#: a template candidate counts as exposed if projection moved it less than this (mm)
EXPOSED_MM = 3.0
#: target spacing (mm) of template candidates on each primitive
CANDIDATE_SPACING_MM = 3.0
_MODELS = {"knee": knee, "hip": hip}


def mean_model(kind: str) -> object:
    """The mean-parameter phantom model of a kind (``knee`` or ``hip``)."""
    mod = _MODELS[kind]
    model_cls = {"knee": knee.KneeModel, "hip": hip.HipModel}[kind]
    return model_cls(mod.sample_anatomy(None), mod.sample_appearance(None))


def project_to_surface(
    fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    n_iter: int = 30,
    tol: float = 1e-9,
    h: float = 1e-5,
    max_step: float = 5.0,
) -> np.ndarray:
    """Newton projection of points ``(3, N)`` onto the zero level set of ``fn`` (mm).

    Each step moves a point by ``-F grad F / |grad F|^2`` (at most ``max_step`` mm);
    points stop once ``|F| < tol``.
    """
    x = np.array(x, dtype=float, copy=True)
    offsets = np.concatenate([np.zeros((3, 1)), h * np.eye(3), -h * np.eye(3)], axis=1)
    active = np.arange(x.shape[1])
    for _ in range(n_iter):
        if active.size == 0:
            break
        xa = x[:, active]
        pts = (xa[:, None, :] + offsets[:, :, None]).reshape(3, -1)
        v = fn(pts).reshape(7, -1)
        d = v[0]
        g = (v[1:4] - v[4:7]) / (2 * h)
        g2 = np.maximum(np.sum(g * g, axis=0), 1e-12)
        step = g * (d / g2)
        norm = np.sqrt(np.sum(step * step, axis=0))
        step *= np.minimum(1.0, max_step / np.maximum(norm, 1e-300))
        x[:, active] = xa - step
        active = active[np.abs(d) >= tol]
    return x


def farthest_point_order(points: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` points ``(3, M)`` chosen greedily far apart, from the highest ``z``."""
    m = points.shape[1]
    if n > m:
        raise ValueError(f"cannot choose {n} landmarks among {m} candidates")
    chosen = np.empty(n, dtype=int)
    chosen[0] = int(np.argmax(points[2]))
    dist = np.full(m, np.inf)
    for i in range(1, n):
        d = np.sum((points - points[:, chosen[i - 1], None]) ** 2, axis=0)
        dist = np.minimum(dist, d)
        chosen[i] = int(np.argmax(dist))
    return chosen


def _area(prim: object) -> float:
    if hasattr(prim, "radius"):  # capsule: cylinder part
        return 2 * np.pi * prim.radius * float(np.linalg.norm(prim.b - prim.a))  # type: ignore[attr-defined]
    r = np.asarray(getattr(prim, "radii", getattr(prim, "half", None)), float)
    p = 1.6075  # Knud Thomsen's ellipsoid area approximation
    a, b, c = r**p
    return float(4 * np.pi * ((a * b + a * c + b * c) / 3) ** (1 / p))


@lru_cache(maxsize=16)
def template(kind: str, n: int) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """Per structure, the ``n`` landmark definitions: (part names, parametric coords ``(n, 3)``)."""
    model = mean_model(kind)
    out: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    for structure in model.landmark_structures:  # type: ignore[attr-defined]
        names: list[str] = []
        us, xs = [], []
        for name, prim, frame in model.anchor_parts(structure):  # type: ignore[attr-defined]
            k = int(np.clip(_area(prim) / CANDIDATE_SPACING_MM**2, 64, 6000))
            u = prim.anchor_candidates(k)  # type: ignore[attr-defined]
            names += [name] * len(u)
            us.append(u)
            xs.append(frame.to_world(prim.anchor(u)))  # type: ignore[attr-defined]
        x0 = np.concatenate(xs, axis=1)
        fn = lambda p, s=structure: model.structure_sdf(s, p)  # type: ignore[attr-defined]  # noqa: E731
        xp = project_to_surface(fn, x0)
        ok = np.sqrt(np.sum((xp - x0) ** 2, axis=0)) < EXPOSED_MM
        ok &= np.abs(fn(xp)) < 1e-6
        ok &= model.landmark_region(structure, xp)  # type: ignore[attr-defined]
        idx = np.flatnonzero(ok)
        sel = idx[farthest_point_order(xp[:, idx], n)]
        out[structure] = (tuple(names[i] for i in sel), np.concatenate(us)[sel])
    return out


def compute_landmarks(kind: str, model: object, n: int) -> pd.DataFrame:
    """World coordinates (mm) of the ``n`` corresponding landmarks of every structure.

    Returns a frame with columns ``structure``, ``index``, ``x``, ``y``, ``z``, ordered by
    the kind's landmark structures then index.
    """
    rows = []
    if n <= 0:
        return pd.DataFrame({"structure": pd.Series(dtype=str), "index": pd.Series(dtype=int),
                             "x": pd.Series(dtype=float), "y": pd.Series(dtype=float),
                             "z": pd.Series(dtype=float)})
    for structure, (names, u) in template(kind, n).items():
        parts = {nm: (prim, frame) for nm, prim, frame in model.anchor_parts(structure)}  # type: ignore[attr-defined]
        x0 = np.empty((3, n))
        names_arr = np.asarray(names)
        for nm in dict.fromkeys(names):
            sel = names_arr == nm
            prim, frame = parts[nm]
            x0[:, sel] = frame.to_world(prim.anchor(u[sel]))
        fn = lambda p, s=structure: model.structure_sdf(s, p)  # type: ignore[attr-defined]  # noqa: E731
        xp = project_to_surface(fn, x0)
        rows.append(pd.DataFrame({"structure": structure, "index": np.arange(n),
                                  "x": xp[0], "y": xp[1], "z": xp[2]}))
    return pd.concat(rows, ignore_index=True)
