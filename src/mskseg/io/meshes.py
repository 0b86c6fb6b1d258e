"""Surface meshes of segmented structures, in world coordinates, as STL and VTK files for 3D Slicer.

:func:`structure_meshes` runs :func:`skimage.measure.marching_cubes` at level 0.5 on each structure's
binary mask, padded with background so that every surface is closed, and maps the vertices from index
space to world millimetres with the volume's spacing, origin and direction (world = origin + direction @
(index * spacing), see :mod:`mskseg.volume`). Faces are wound counter-clockwise seen from outside (right-hand
rule gives the outward normal); vertex normals are the area-weighted means of the adjacent face normals.

Coordinate system (LPS)
-----------------------
Vertices are written as they are: LPS millimetres, the frame of ITK, SimpleITK, DICOM and of every volume in
:mod:`mskseg`. STL and legacy VTK have no field for the coordinate system, so the writers put ``SPACE=LPS`` in
the header: the 80-byte header of a binary STL, the title line (second line) of a legacy VTK file. This is the
marker 3D Slicer writes itself (``3D Slicer output. SPACE=LPS``) and reads back: its model reader
(``vtkMRMLModelStorageNode::GetCoordinateSystemFromFileHeader`` in Slicer's
``Libs/MRML/Core/vtkMRMLModelStorageNode.cxx``) searches the header that ``vtkSTLReader`` /
``vtkPolyDataReader`` return for the substring ``SPACE=RAS`` or ``SPACE=LPS`` and, for LPS, negates x and y
into its internal RAS. A file without the marker is taken as LPS by Slicer 4.11 and later (the default changed
in the 4.11 preview of 2020-02-26, announced by A. Lasso on the Slicer forum, "Model files are now saved in LPS
coordinate system") but as RAS by older versions; with the marker the mesh opens aligned with the NIfTI/NRRD
image it was made from (which Slicer also reads from its LPS/ITK geometry) in 4.11 and later and in the earlier
versions that already read the marker; a version older still needs "LPS" picked in the Add data options. VTK's
readers (checked with VTK 9.7) return exactly our header text from ``GetHeader()``. The binary STL header never
starts with ``solid`` (some readers take that for ASCII STL) and is NUL-padded, so VTK sniffs it as binary.

Edge cases
----------
==============================  ============================================================
case                            behaviour
==============================  ============================================================
structure absent (no voxel)     no entry in the result of :func:`structure_meshes`; skip it
structure touching the border   closed anyway (the mask is padded with background)
label value 0 (background)      ``ValueError``
``step_size`` > 1               coarser mesh, still closed (padded so that the last sample is background)
direction with determinant -1   faces flipped so that they still face outward
mesh without faces              :func:`write_stl` / :func:`write_vtk` raise ``ValueError``
==============================  ============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import scipy.sparse as sp
from skimage.measure import marching_cubes

from mskseg.io.atomic import atomic_path
from mskseg.volume import Volume

#: what the writers put in the file headers; 3D Slicer reads ``SPACE=LPS`` (see module docstring)
COORDINATE_SYSTEM_TAG = "SPACE=LPS"
_STL_HEADER_SIZE = 80
_STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])
#: Taubin smoothing factors (shrink, inflate): smooths without the shrinking of plain Laplacian smoothing
_TAUBIN_LAMBDA, _TAUBIN_MU = 0.5, -0.53


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle surface.

    Attributes
    ----------
    vertices
        ``(n, 3)`` float64, world coordinates in millimetres (LPS).
    faces
        ``(m, 3)`` int64 vertex indices, counter-clockwise seen from outside.
    normals
        ``(n, 3)`` float64 unit vertex normals, pointing outward (zero for a vertex of no face).
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray

    def __post_init__(self) -> None:
        vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)
        normals = np.asarray(self.normals, dtype=np.float64).reshape(-1, 3)
        if normals.shape != vertices.shape:
            raise ValueError(f"{len(normals)} normals for {len(vertices)} vertices")
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError(f"face indices out of range 0..{len(vertices) - 1}")
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "normals", normals)

    @property
    def face_normals(self) -> np.ndarray:
        """``(m, 3)`` unit normals of the faces (right-hand rule; zero for a degenerate face)."""
        return _unit(_face_cross(self.vertices, self.faces))

    @property
    def volume_mm3(self) -> float:
        """Enclosed volume (mm³) by the divergence theorem; positive for a closed, outward-facing mesh."""
        tri = self.vertices[self.faces]
        return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)


def structure_meshes(labels: Volume, label_values: Mapping[str, int], *, smoothing_iterations: int = 0,
                     step_size: int = 1) -> dict[str, Mesh]:
    """One closed surface mesh per structure, in world millimetres (LPS).

    Parameters
    ----------
    labels
        Label map; its spacing, origin and direction place the vertices.
    label_values
        Structure name -> label value (non-zero).
    smoothing_iterations
        Taubin smoothing passes (each a shrink and an inflate step with uniform weights) applied to the
        vertices in world coordinates; 0 keeps the marching-cubes staircase (vertices on voxel-edge midpoints).
    step_size
        Marching-cubes step in voxels (:func:`skimage.measure.marching_cubes`); larger is faster and coarser.

    Returns
    -------
    dict
        Name -> :class:`Mesh`, in the order of ``label_values``; structures without a voxel are left out.

    Raises
    ------
    ValueError
        For a label value 0, ``step_size`` < 1 or ``smoothing_iterations`` < 0.
    """
    if step_size < 1 or smoothing_iterations < 0:
        raise ValueError(f"step_size must be >= 1 and smoothing_iterations >= 0, got {step_size}, "
                         f"{smoothing_iterations}")
    out: dict[str, Mesh] = {}
    for name, value in label_values.items():
        if int(value) == 0:
            raise ValueError(f"structure {name!r} has label value 0, the background")
        mesh = mask_mesh(labels.array == value, labels, step_size=step_size,
                         smoothing_iterations=smoothing_iterations)
        if mesh is not None:
            out[name] = mesh
    return out


def mask_mesh(mask: np.ndarray, geometry: Volume, *, step_size: int = 1, smoothing_iterations: int = 0) -> Mesh | None:
    """The closed surface of a binary mask on ``geometry``'s grid, in world mm; None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != geometry.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the volume's {geometry.shape}")
    nonzero = [np.flatnonzero(mask.any(axis=tuple(b for b in range(3) if b != a))) for a in range(3)]
    if nonzero[0].size == 0:
        return None
    lo = np.array([n[0] for n in nonzero])
    hi = np.array([n[-1] + 1 for n in nonzero])
    crop = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    # one voxel of background before; after, enough that the last sample (index n-1) is background
    after = [1 + (-(s + 1)) % step_size for s in crop.shape]
    padded = np.pad(crop, [(1, a) for a in after]).astype(np.float32)
    verts, faces, _, _ = marching_cubes(padded, level=0.5, step_size=step_size, allow_degenerate=False)
    index = verts.astype(np.float64) + (lo - 1)
    vertices = geometry.index_to_world(index)
    faces = faces.astype(np.int64)
    # skimage winds faces clockwise seen from outside (checked on a sphere); an improper direction mirrors them
    if np.linalg.det(geometry.direction) > 0:
        faces = faces[:, [0, 2, 1]]
    if smoothing_iterations:
        vertices = taubin_smooth(vertices, faces, smoothing_iterations)
    return Mesh(vertices, faces, vertex_normals(vertices, faces))


def taubin_smooth(vertices: np.ndarray, faces: np.ndarray, iterations: int) -> np.ndarray:
    """Vertices after ``iterations`` Taubin passes (lambda 0.5, mu -0.53, uniform neighbour weights)."""
    n = len(vertices)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adjacency = sp.coo_matrix((np.ones(2 * len(edges)), (np.r_[edges[:, 0], edges[:, 1]],
                                                          np.r_[edges[:, 1], edges[:, 0]])), shape=(n, n)).tocsr()
    adjacency.data[:] = 1.0  # duplicate edges (two faces share each) count once
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    mean = sp.diags(1.0 / np.maximum(degree, 1.0)) @ adjacency
    out = np.array(vertices, dtype=np.float64)
    for _ in range(iterations):
        for factor in (_TAUBIN_LAMBDA, _TAUBIN_MU):
            out = out + factor * (mean @ out - out)
    return out


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals from the faces' right-hand-rule normals (zero for a lone vertex)."""
    cross = _face_cross(vertices, faces)  # length = twice the face area
    normals = np.zeros((len(vertices), 3))
    for corner in range(3):
        np.add.at(normals, faces[:, corner], cross)
    return _unit(normals)


def _face_cross(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = np.asarray(vertices, dtype=np.float64)[faces]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def _unit(vectors: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, length, out=np.zeros_like(vectors), where=length > 0)


def _header_text(name: str) -> str:
    """Header text with the coordinate-system tag; ASCII, one line, never starting with ``solid``."""
    clean = "".join(c if c.isascii() and c.isprintable() else "_" for c in name)
    return f"mskseg mesh {clean} {COORDINATE_SYSTEM_TAG}".replace("  ", " ")


def _check_writable(mesh: Mesh) -> None:
    if len(mesh.faces) == 0:
        raise ValueError("the mesh has no faces; an empty structure gives no mesh file")


def write_stl(mesh: Mesh, path: str | os.PathLike[str], *, name: str = "") -> Path:
    """Write a binary STL atomically (float32 coordinates in LPS mm; facet normals from the faces).

    The 80-byte header holds ``mskseg mesh <name> SPACE=LPS`` (name cut to fit), NUL-padded. Returns the path.
    """
    _check_writable(mesh)
    text = _header_text(name)
    if len(text) > _STL_HEADER_SIZE:
        text = _header_text(name[: max(0, len(name) - (len(text) - _STL_HEADER_SIZE))])
    header = text.encode("ascii").ljust(_STL_HEADER_SIZE, b"\0")[:_STL_HEADER_SIZE]
    records = np.zeros(len(mesh.faces), dtype=_STL_RECORD)
    records["normal"] = mesh.face_normals
    records["vertices"] = mesh.vertices[mesh.faces]
    final = Path(path)
    with atomic_path(final) as tmp, open(tmp, "wb") as f:
        f.write(header)
        f.write(np.uint32(len(records)).astype("<u4").tobytes())
        f.write(records.tobytes())
    return final


def read_stl(path: str | os.PathLike[str]) -> tuple[Mesh, str]:
    """Read a binary STL; identical float32 corners are merged into one vertex.

    Returns the mesh (normals recomputed from the faces) and the header text (up to the first NUL).
    Raises ``ValueError`` for a file whose size does not match its triangle count (or an ASCII STL).
    """
    data = Path(path).read_bytes()
    if len(data) < _STL_HEADER_SIZE + 4:
        raise ValueError(f"{path}: too short for a binary STL ({len(data)} bytes)")
    count = int(np.frombuffer(data, "<u4", 1, _STL_HEADER_SIZE)[0])
    expected = _STL_HEADER_SIZE + 4 + count * _STL_RECORD.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes, a binary STL of {count} triangles has {expected}")
    header = data[:_STL_HEADER_SIZE].split(b"\0", 1)[0].decode("ascii", errors="replace")
    records = np.frombuffer(data, _STL_RECORD, count, _STL_HEADER_SIZE + 4)
    corners = records["vertices"].reshape(-1, 3)
    vertices, inverse = np.unique(corners, axis=0, return_inverse=True)
    faces = inverse.reshape(-1, 3).astype(np.int64)
    vertices = vertices.astype(np.float64)
    return Mesh(vertices, faces, vertex_normals(vertices, faces)), header


def write_vtk(mesh: Mesh, path: str | os.PathLike[str], *, name: str = "", binary: bool = True) -> Path:
    """Write a legacy VTK POLYDATA file (version 4.2, as 3D Slicer writes) atomically.

    Points in LPS mm (``double``), triangles as ``POLYGONS``, the vertex normals as ``POINT_DATA NORMALS``;
    the title line holds ``mskseg mesh <name> SPACE=LPS``. Binary (big-endian, as the legacy format requires;
    about half the size of ASCII and much faster) by default, ``binary=False`` for ASCII with 17 significant
    digits. Both are exact. Returns the path.
    """
    _check_writable(mesh)
    n, m = len(mesh.vertices), len(mesh.faces)
    cells = np.hstack([np.full((m, 1), 3, np.int64), mesh.faces])
    final = Path(path)
    with atomic_path(final) as tmp, open(tmp, "wb") as f:
        f.write(f"# vtk DataFile Version 4.2\n{_header_text(name)[:255]}\n".encode("ascii"))
        f.write(b"BINARY\n" if binary else b"ASCII\n")
        f.write(b"DATASET POLYDATA\n")
        f.write(f"POINTS {n} double\n".encode("ascii"))
        _write_block(f, mesh.vertices, ">f8", "%.17g", binary)
        f.write(f"POLYGONS {m} {4 * m}\n".encode("ascii"))
        _write_block(f, cells, ">i4", "%d", binary)
        f.write(f"POINT_DATA {n}\nNORMALS Normals double\n".encode("ascii"))
        _write_block(f, mesh.normals, ">f8", "%.17g", binary)
    return final


def _write_block(f: BinaryIO, values: np.ndarray, binary_dtype: str, fmt: str, binary: bool) -> None:
    if binary:
        f.write(np.ascontiguousarray(values, dtype=binary_dtype).tobytes())
        f.write(b"\n")
    else:
        np.savetxt(f, values, fmt=fmt, delimiter=" ")
