"""Surfaces of binary masks: triangle meshes, even point sampling and point-to-surface distances.

All coordinates are physical world coordinates in millimetres (the ITK/LPS frame of
:class:`mskseg.volume.Volume`); all distances are in millimetres.

*The surface* of a structure is always the iso-0.5 marching-cubes surface of its binary
mask (``1`` inside, ``0`` outside, the volume extended by background beyond its border):
it runs halfway between the centres of neighbouring inside and outside voxels, so a flat
face of a box of voxels lies exactly half a voxel outside the outermost voxel centres, and
a voxelised sphere of radius ``r`` has its surface within half a voxel edge of ``r``.
Structures touching the volume border are closed half a voxel beyond the last voxel centre.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes

from mskseg.volume import Volume

#: at most this many point-triangle pairs are evaluated at once in :func:`mesh_distance`
_PAIRS_PER_CHUNK = 500_000
#: nearest triangle centroids tried first per point in :func:`mesh_distance`
_FIRST_K = 8


def _describe(label: int | None) -> str:
    return "the structure (voxels > 0)" if label is None else f"label {label}"


def mask_surface(
    mask: Volume, *, label: int | None = None, smooth_sigma_mm: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Triangle mesh of the boundary of ``mask == label`` (``mask > 0`` when ``label`` is None).

    The binary mask (as float, optionally Gaussian-smoothed with ``smooth_sigma_mm`` mm,
    converted per axis with the spacing) is cropped to the structure, padded with
    background so that a structure touching the volume border gives a closed surface, and
    contoured by marching cubes at level 0.5 in index space; the vertices are then mapped
    to world coordinates with :meth:`Volume.index_to_world`, so anisotropic spacing and a
    rotated direction are handled exactly.

    Returns ``(vertices, faces)``: ``vertices`` a float ``(V, 3)`` array of world
    coordinates (mm), ``faces`` an int64 ``(F, 3)`` array of vertex indices, wound
    consistently so that normals (``cross(b - a, c - a)``) point out of the structure,
    also for a direction matrix with determinant -1. Degenerate (zero-area) triangles are
    dropped.

    Raises ValueError naming the label when the structure is empty (or vanishes entirely
    under the smoothing), and for a negative or non-finite ``smooth_sigma_mm``.
    """
    sigma = float(smooth_sigma_mm)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"smooth_sigma_mm must be a finite value >= 0, got {smooth_sigma_mm!r}")
    arr = np.asarray(mask.array)
    inside = arr > 0 if label is None else arr == label
    if not inside.any():
        raise ValueError(f"{_describe(label)} is empty: no voxel of the mask belongs to it")

    sigma_vox = sigma / np.asarray(mask.spacing, dtype=float)
    # background margin: one voxel closes the surface; the smoothing kernel needs 4 sigma
    pad = 1 + np.ceil(4.0 * sigma_vox).astype(int)
    spans = [np.flatnonzero(inside.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    lo = np.array([s[0] for s in spans]) - pad
    hi = np.array([s[-1] for s in spans]) + 1 + pad
    field = np.zeros(tuple(hi - lo), dtype=np.float32)
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, arr.shape)
    dst = tuple(slice(a - o, b - o) for a, b, o in zip(src_lo, src_hi, lo, strict=True))
    src = tuple(slice(a, b) for a, b in zip(src_lo, src_hi, strict=True))
    field[dst] = inside[src]
    if sigma > 0:
        field = gaussian_filter(field, sigma=sigma_vox, mode="constant", cval=0.0)
        if field.max() <= 0.5:
            raise ValueError(
                f"{_describe(label)} vanishes under smoothing with sigma {sigma} mm "
                "(no value above 0.5 is left)"
            )

    verts, faces, _, _ = marching_cubes(field, level=0.5, spacing=(1.0, 1.0, 1.0))
    vertices = mask.index_to_world(verts.astype(float) + lo)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    a, b, c = (vertices[faces[:, n]] for n in range(3))
    normals = np.cross(b - a, c - a)
    keep = np.einsum("ij,ij->i", normals, normals) > 0  # cheaper than allow_degenerate=False
    # enclosed volume (divergence theorem), positive when the normals point outward
    if np.einsum("ij,ij->", a[keep], normals[keep]) < 0:  # e.g. a left-handed direction
        return vertices, np.ascontiguousarray(faces[keep][:, ::-1])
    return vertices, faces[keep]


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume (mm^3) of a closed mesh: positive when the normals point outward."""
    a, b, c = (np.asarray(vertices, dtype=float)[np.asarray(faces)[:, n]] for n in range(3))
    return float(np.einsum("ij,ij->", a, np.cross(b - a, c - a)) / 6.0)


def _triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, n]] for n in range(3))
    return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)



def as_points(points: np.ndarray, what: str = "points", n: str = "N") -> np.ndarray:
    """``points`` as a float ``(n, 3)`` array (an empty input as ``(0, 3)``); ValueError naming ``what`` for
    another shape or a non-finite coordinate."""
    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        pts = pts.reshape(0, 3)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"{what} must have shape ({n}, 3), got {np.shape(points)}")
    if not np.isfinite(pts).all():
        raise ValueError(f"{what} contain non-finite coordinates")
    return pts

def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype=float)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or (f.size and not np.issubdtype(f.dtype, np.integer)):
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"faces refer to vertices outside 0..{len(v) - 1}")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain non-finite coordinates")
    return v, f.astype(np.int64, copy=False)


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int, *, seed: int = 0, oversample: int = 20
) -> np.ndarray:
    """``n`` points (world mm, shape ``(n, 3)``) spread evenly over a triangle mesh.

    ``oversample * n`` candidates are drawn uniformly by area (a triangle with probability
    proportional to its area, then a uniform barycentric position in it), and farthest-point
    sampling (Euclidean, in mm) picks ``n`` of them, starting from the candidate nearest the
    candidates' mean. The result depends only on the mesh, ``n``, ``oversample`` and
    ``seed`` (numpy ``default_rng``). Every point lies on the mesh; when the mesh is small
    compared with ``n`` the points may come close to each other, and with ``oversample=1``
    the candidates are returned in farthest-point order.

    Raises ValueError if ``n < 1``, ``oversample < 1``, the mesh is malformed or has zero
    total area (no faces, or only degenerate ones).
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(oversample) != oversample or oversample < 1:
        raise ValueError(f"oversample must be a positive integer, got {oversample!r}")
    n, oversample = int(n), int(oversample)
    v, f = _check_mesh(vertices, faces)
    areas = _triangle_areas(v, f) if len(f) else np.zeros(0)
    total = float(areas.sum())
    if not total > 0:
        raise ValueError("the mesh has zero area: nothing to sample")

    rng = np.random.default_rng(seed)
    m = oversample * n
    tri = rng.choice(len(f), size=m, p=areas / total)
    uv = rng.random((m, 2))
    flip = uv.sum(axis=1) > 1.0
    uv[flip] = 1.0 - uv[flip]  # fold the far half of the parallelogram back
    a, b, c = (v[f[tri, k]] for k in range(3))
    cand = a + uv[:, :1] * (b - a) + uv[:, 1:] * (c - a)
    return cand[_farthest_point_order(cand, n)]


def _farthest_point_order(points: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` of ``points`` chosen greedily, each farthest from those before."""
    x, y, z = (np.ascontiguousarray(points[:, k]) for k in range(3))
    start = int(np.argmin(((points - points.mean(axis=0)) ** 2).sum(axis=1)))
    chosen = np.empty(n, dtype=np.int64)
    best = np.full(len(points), np.inf)
    d = np.empty(len(points))
    tmp = np.empty(len(points))
    last = start
    for i in range(n):
        chosen[i] = last
        np.subtract(x, x[last], out=d)
        np.multiply(d, d, out=d)
        np.subtract(y, y[last], out=tmp)
        d += tmp * tmp
        np.subtract(z, z[last], out=tmp)
        d += tmp * tmp
        np.minimum(best, d, out=best)
        last = int(np.argmax(best))
    return chosen


class _Triangles:
    """Triangle corners, centroids and circumscribing radii about the centroids (mm)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        self.corners = tuple(vertices[faces[:, k]] for k in range(3))
        a, b, c = self.corners
        self.centroids = (a + b + c) / 3.0
        self.radii = np.sqrt(np.max([((v - self.centroids) ** 2).sum(axis=1) for v in (a, b, c)], axis=0))

    def distance(self, p: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Exact distance from points ``p`` ``(M, 3)`` to triangles ``t`` ``(M,)``.

        The distance to the plane where the point projects inside the triangle, otherwise
        to the nearest of the three edges; a degenerate triangle reduces to its edges.
        """
        a, b, c = (v[t] for v in self.corners)
        edges = (b - a, c - b, a - c)
        normal = np.cross(edges[0], -edges[2])
        length = np.sqrt(_dot(normal, normal))
        inside = length > 0
        plane = np.abs(_dot(p - a, normal)) / np.where(inside, length, 1.0)
        seg = np.full(len(t), np.inf)
        for start, edge in zip((a, b, c), edges, strict=True):
            rel = p - start
            # the projection lies on the inner side of every edge (in-plane edge normal)
            inside &= _dot(rel, np.cross(normal, edge)) >= 0
            len2 = _dot(edge, edge)
            along = np.divide(_dot(rel, edge), len2, out=np.zeros_like(len2), where=len2 > 0)
            diff = rel - np.clip(along, 0.0, 1.0)[:, None] * edge
            np.minimum(seg, _dot(diff, diff), out=seg)
        return np.where(inside, plane, np.sqrt(seg))


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, y)


def mesh_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Exact unsigned distance (mm) from each point ``(N, 3)`` to a triangle mesh; shape ``(N,)``.

    Triangle centroids are indexed in a k-d tree. The triangles of the few nearest
    centroids give an upper bound ``u`` of each point's distance; a triangle with centroid
    ``c`` and circumscribing radius ``R_t`` (about ``c``) is at least ``|p - c| - R_t`` away,
    so only the triangles whose centroid lies within ``u + max R_t`` and whose bound is
    ``<= u`` are evaluated exactly. The result is exact up to floating-point rounding.
    The cost grows with the number of triangles within ``u + max R_t``: points far from a
    curved surface or near its medial axis (the centre of a sphere) are the slow ones.

    ``N == 0`` gives an empty array. Raises ValueError for non-finite points, a malformed
    mesh or one without faces.
    """
    v, f = _check_mesh(vertices, faces)
    pts = as_points(points, "points", "N")
    if len(f) == 0:
        raise ValueError("the mesh has no faces")
    if len(pts) == 0:
        return np.zeros(0)

    tris = _Triangles(v, f)
    tree = cKDTree(tris.centroids, balanced_tree=False, compact_nodes=False)  # fast to build
    r_max = float(tris.radii.max())
    k = min(_FIRST_K, len(f))
    best = np.empty(len(pts))
    kth = np.empty(len(pts))  # distance of the k-th nearest centroid
    step = max(1, _PAIRS_PER_CHUNK // k)
    for s in range(0, len(pts), step):
        chunk = pts[s : s + step]
        cdist, cidx = tree.query(chunk, k=k)
        cdist, cidx = cdist.reshape(len(chunk), k), cidx.reshape(len(chunk), k)
        d = tris.distance(np.repeat(chunk, k, axis=0), cidx.ravel()).reshape(len(chunk), k)
        best[s : s + step] = d.min(axis=1)
        kth[s : s + step] = cdist[:, -1]
    # exact already when no unevaluated triangle (centroid beyond kth) can be closer
    todo = np.flatnonzero(kth - r_max < best) if k < len(f) else np.zeros(0, dtype=np.intp)
    if len(todo) == 0:
        return best

    counts = tree.query_ball_point(pts[todo], r=best[todo] + r_max, return_length=True)
    group = np.cumsum(counts) // _PAIRS_PER_CHUNK  # chunks of about _PAIRS_PER_CHUNK pairs
    for g in np.unique(group):
        sel = todo[group == g]
        lists = tree.query_ball_point(pts[sel], r=best[sel] + r_max, return_sorted=False)
        lengths = np.fromiter(map(len, lists), dtype=np.intp, count=len(lists))
        tri = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.intp, count=int(lengths.sum()))
        owner = np.repeat(sel, lengths)
        p = pts[owner]
        bound = np.linalg.norm(p - tris.centroids[tri], axis=1) - tris.radii[tri]
        keep = bound <= best[owner]
        np.minimum.at(best, owner[keep], tris.distance(p[keep], tri[keep]))
    return best


def surface_distance(points: np.ndarray, mask: Volume, *, label: int | None = None) -> np.ndarray:
    """Unsigned distance (mm) from each world point ``(N, 3)`` to the surface of a structure.

    The surface is the iso-0.5 marching-cubes surface of the binary mask ``mask == label``
    (``mask > 0`` when ``label`` is None), i.e. halfway between inside and outside voxel
    centres (see :func:`mask_surface`, without smoothing); the distance to it is exact up
    to floating-point rounding (:func:`mesh_distance`). Points inside and outside the
    structure both get positive distances; points on the surface get 0.

    ``N == 0`` gives an empty array. Raises ValueError naming the label for an empty
    structure, and for points that are not a finite ``(N, 3)`` array.
    """
    vertices, faces = mask_surface(mask, label=label)
    return mesh_distance(points, vertices, faces)


def distance_summary(distances: np.ndarray) -> dict[str, float]:
    """``{"mean_mm", "p95_mm", "max_mm"}`` of distances in mm, ignoring NaN entries.

    The 95th percentile uses linear interpolation between order statistics. With no
    (non-NaN) distances at all every value is NaN; no warning is raised.
    """
    d = np.asarray(distances, dtype=float).ravel()
    d = d[~np.isnan(d)]
    if d.size == 0:
        return {"mean_mm": float("nan"), "p95_mm": float("nan"), "max_mm": float("nan")}
    return {
        "mean_mm": float(d.mean()),
        "p95_mm": float(np.percentile(d, 95)),
        "max_mm": float(d.max()),
    }
