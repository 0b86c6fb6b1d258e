"""Corresponding surface landmarks (ground-truth correspondences) of synthetic bones.

A landmark is defined once per kind, on the mean-parameter template, as a primitive of
the structure (e.g. ``condyle_medial``) and a parametric coordinate on it (a unit
direction for ellipsoids and spheres, ``(t, cos psi, sin psi)`` for capsules): the
template candidates are spread over every primitive, kept where they lie on the exposed
bone surface (within :data:`EXPOSED_MM` of it along the primitive's normal), on a smooth
patch (:func:`is_stable`) and inside the structure's landmark region, and ``n`` of them
are chosen by farthest-point sampling (so the first ``m < n`` are the landmarks for
``n = m``).

For a subject the same parametric point is mapped through that subject's primitive and
pose, then moved along the primitive's normal onto the subject's zero level set
(:func:`ray_to_surface`; Newton steps ``p <- p - F grad F / |grad F|^2`` with a
central-difference gradient as a fallback). The landmark index is therefore the same
anatomical point in every subject; its position is a continuous function of the
subject's parameters and independent of any grid.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd

from mskseg.synthetic import ankle, hip, knee

#: a template candidate counts as exposed if projection moved it less than this (mm)
EXPOSED_MM = 1.0
#: template landmarks keep this distance (mm) from creases and other surfaces
STABLE_MM = 2.0
#: target spacing (mm) of template candidates on each primitive
CANDIDATE_SPACING_MM = 3.0
#: template anchors must stay within ROBUST_MM of the surface in CHECK_SUBJECTS random
#: anatomies (drawn from CHECK_SEED), so that no subject buries them deep in the bone
ROBUST_MM = 2.5
CHECK_SUBJECTS = 8
CHECK_SEED = 2**31 - 1
#: subject anchors move at most this far (mm) along their normal, else to the nearest point
RAY_MM = 6.0
#: template candidates pre-selected (farthest-point) before the robustness check
PRESELECT = 1000
_MODELS = {"knee": knee, "hip": hip, "ankle": ankle}
#: the phantom model class of each kind (the one registry; :mod:`mskseg.synthetic.generate` uses it too)
MODEL_CLASSES = {"knee": knee.KneeModel, "hip": hip.HipModel, "ankle": ankle.AnkleModel}


def mean_model(kind: str, rng: np.random.Generator | None = None) -> object:
    """The mean-parameter phantom model of a kind (``knee``, ``hip`` or ``ankle``), or with ``rng``
    a random anatomy."""
    mod = _MODELS[kind]
    model_cls = MODEL_CLASSES[kind]
    return model_cls(mod.sample_anatomy(rng), mod.sample_appearance(None))


def project_to_surface(
    fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    n_iter: int = 80,
    tol: float = 1e-9,
    h: float = 1e-5,
    max_step: float = 0.5,
) -> np.ndarray:
    """Newton projection of points ``(3, N)`` onto the zero level set of ``fn`` (mm).

    Each step moves a point by ``-F grad F / |grad F|^2``, damped to at most ``max_step``
    mm so that points starting off the surface follow the gradient flow rather than jump;
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


def gradient(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient ``(3, N)`` of ``fn`` at points ``(3, N)``."""
    offsets = np.concatenate([h * np.eye(3), -h * np.eye(3)], axis=1)
    v = fn((x[:, None, :] + offsets[:, :, None]).reshape(3, -1)).reshape(6, -1)
    return (v[:3] - v[3:]) / (2 * h)


def is_stable(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rho: float = STABLE_MM) -> np.ndarray:
    """Whether surface points ``(3, N)`` lie on a smooth patch of ``fn``'s zero level set.

    ``fn`` must grow like the distance ``rho`` mm along the normal and inwards, and stay
    near 0 at ``rho`` mm along two tangents: false near creases (carved joint surfaces'
    edges, the acetabular rim) and where another surface is within ``rho``.
    """
    g = gradient(fn, x)
    n = g / np.maximum(np.linalg.norm(g, axis=0), 1e-12)
    ref = np.where(np.abs(n[0]) < 0.9, 1.0, 0.0)[None] * np.array([[1.0], [0.0], [0.0]])
    ref += np.where(np.abs(n[0]) < 0.9, 0.0, 1.0)[None] * np.array([[0.0], [1.0], [0.0]])
    t1 = np.cross(n, ref, axis=0)
    t1 /= np.linalg.norm(t1, axis=0)
    t2 = np.cross(n, t1, axis=0)
    probes = np.stack([n, -n, t1, -t1, t2, -t2])  # (6, 3, N)
    v = fn((x[None] + rho * probes).transpose(1, 0, 2).reshape(3, -1)).reshape(6, -1)
    want = np.array([rho, -rho, 0, 0, 0, 0])[:, None]
    return np.all(np.abs(v - want) < 0.35 * rho, axis=0)


def farthest_point_order(points: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` points ``(3, M)`` chosen greedily far apart, from the highest ``z``."""
    m = points.shape[1]
    if n > m:
        raise ValueError(f"cannot choose {n} landmarks among {m} candidates")
    x, y, z = (np.ascontiguousarray(points[a]) for a in range(3))
    chosen = np.empty(n, dtype=int)
    chosen[0] = int(np.argmax(z))
    dist = np.full(m, np.inf)
    for i in range(1, n):
        c = chosen[i - 1]
        d = (x - x[c]) ** 2 + (y - y[c]) ** 2 + (z - z[c]) ** 2
        np.minimum(dist, d, out=dist)
        chosen[i] = int(np.argmax(dist))
    return chosen


def ray_to_surface(
    fn: Callable[[np.ndarray], np.ndarray],
    x0: np.ndarray,
    normal: np.ndarray,
    max_dist: float = 20.0,
    step: float = 0.25,
    n_bisect: int = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """First zero of ``fn`` along lines from ``x0`` (``(3, N)``, mm) with outward ``normal``.

    A point outside (``fn > 0``) moves inwards (``-normal``), a point inside outwards, up
    to ``max_dist`` mm; the crossing is bracketed on a ``step`` mm march then bisected.
    The result moves continuously with ``x0`` and ``normal`` (unlike the nearest surface
    point, which jumps when ``x0`` crosses a medial axis). Returns the points and a mask
    of those for which a crossing was found (the others are returned unchanged).
    """
    f0 = fn(x0)
    outside = f0 > 0
    d = np.where(outside, -1.0, 1.0)[None] * normal
    k = max(int(np.ceil(max_dist / step)), 1)
    s = step * np.arange(1, k + 1)
    f = fn((x0[:, None, :] + d[:, None, :] * s[None, :, None]).reshape(3, -1)).reshape(k, -1)
    crossed = (f > 0) != outside[None]
    found = crossed.any(axis=0)
    first = np.argmax(crossed, axis=0)
    lo = np.where(first > 0, s[np.maximum(first - 1, 0)], 0.0)
    hi = s[first]
    for _ in range(n_bisect):
        mid = 0.5 * (lo + hi)
        same = (fn(x0 + d * mid[None]) > 0) == outside
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    x = np.where(found[None], x0 + d * (0.5 * (lo + hi))[None], x0)
    return x, found


def _anchors(model: object, structure: str, names: tuple[str, ...], u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anchor points and their primitives' unit outward normals, both ``(3, n)``, world mm."""
    parts = {nm: (prim, frame) for nm, prim, frame in model.anchor_parts(structure)}  # type: ignore[attr-defined]
    x0, nrm = np.empty((3, len(names))), np.empty((3, len(names)))
    names_arr = np.asarray(names)
    for nm in dict.fromkeys(names):
        sel = names_arr == nm
        prim, frame = parts[nm]
        x0[:, sel] = frame.to_world(prim.anchor(u[sel]))
        g = gradient(lambda p, pr=prim, fr=frame: pr(fr.to_local(p)), x0[:, sel])
        nrm[:, sel] = g / np.maximum(np.linalg.norm(g, axis=0), 1e-12)
    return x0, nrm


@lru_cache(maxsize=16)
def template(kind: str, n: int) -> dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]]:
    """Per structure, the ``n`` landmark definitions on the mean shape: part names,
    parametric coordinates ``(n, 3)`` and orientations ``(n,)`` (+1 where the part's
    outward normal is the bone's, -1 for carving parts such as the acetabular sphere).

    A structure built as the mirror image of another (``model.mirror_of``, the hip's
    right side) shares its template, so landmark ``i`` on the right is the mirror of
    landmark ``i`` on the left.
    """
    model = mean_model(kind)
    checks = [mean_model(kind, np.random.default_rng([CHECK_SEED, i])) for i in range(CHECK_SUBJECTS)]
    mirror_of: dict[str, str] = getattr(model, "mirror_of", {})
    out: dict[str, tuple[tuple[str, ...], np.ndarray, np.ndarray]] = {}
    for structure in model.landmark_structures:  # type: ignore[attr-defined]
        if structure in mirror_of:
            continue
        names: list[str] = []
        us = []
        for name, prim, _ in model.anchor_parts(structure):  # type: ignore[attr-defined]
            k = int(np.clip(prim.area() / CANDIDATE_SPACING_MM**2, 64, 6000))  # type: ignore[attr-defined]
            u = prim.anchor_candidates(k)  # type: ignore[attr-defined]
            names += [name] * len(u)
            us.append(u)
        u_all = np.concatenate(us)
        x0, nrm = _anchors(model, structure, tuple(names), u_all)
        fn = functools.partial(model.structure_sdf, structure)  # type: ignore[attr-defined]
        orient = np.where(np.sum(gradient(fn, x0) * nrm, axis=0) >= 0, 1.0, -1.0)
        xp, ok = ray_to_surface(fn, x0, orient[None] * nrm, max_dist=EXPOSED_MM, n_bisect=30)
        ok &= is_stable(fn, xp)
        ok &= model.landmark_region(structure, xp)  # type: ignore[attr-defined]
        idx = np.flatnonzero(ok)
        idx = idx[farthest_point_order(xp[:, idx], min(max(PRESELECT, 2 * n), idx.size))]
        partners = [structure] + [k for k, v in mirror_of.items() if v == structure]
        for check in checks:
            for st in partners:
                c0, cn = _anchors(check, st, tuple(names[i] for i in idx), u_all[idx])
                cfn = functools.partial(check.structure_sdf, st)  # type: ignore[attr-defined]
                _, found = ray_to_surface(cfn, c0, orient[idx][None] * cn, max_dist=ROBUST_MM, n_bisect=0)
                idx = idx[found]
        sel = idx[farthest_point_order(xp[:, idx], n)]
        out[structure] = (tuple(names[i] for i in sel), u_all[sel], orient[sel])
    for st, src in mirror_of.items():
        out[st] = out[src]
    return {st: out[st] for st in model.landmark_structures}  # type: ignore[attr-defined]


def compute_landmarks(kind: str, model: object, n: int) -> pd.DataFrame:
    """World coordinates (mm) of the ``n`` corresponding landmarks of every structure.

    Each template anchor is placed on the subject's primitive and moved along the
    primitive's normal to the bone surface (:func:`ray_to_surface`; Newton projection
    :func:`project_to_surface` where no crossing lies within :data:`RAY_MM`). Returns a frame with
    columns ``structure``, ``index``, ``x``, ``y``, ``z``, ordered by the kind's landmark
    structures then index.
    """
    rows = []
    if n <= 0:
        return pd.DataFrame({"structure": pd.Series(dtype=str), "index": pd.Series(dtype=int),
                             "x": pd.Series(dtype=float), "y": pd.Series(dtype=float),
                             "z": pd.Series(dtype=float)})
    for structure, (names, u, orient) in template(kind, n).items():
        x0, nrm = _anchors(model, structure, names, u)
        fn = functools.partial(model.structure_sdf, structure)  # type: ignore[attr-defined]
        xp, found = ray_to_surface(fn, x0, orient[None] * nrm, max_dist=RAY_MM)
        if not found.all():
            xp[:, ~found] = project_to_surface(fn, x0[:, ~found])
        rows.append(pd.DataFrame({"structure": structure, "index": np.arange(n),
                                  "x": xp[0], "y": xp[1], "z": xp[2]}))
    return pd.concat(rows, ignore_index=True)
