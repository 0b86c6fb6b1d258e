"""Tests of mskseg.io.meshes: world placement on oblique grids, closed outward surfaces, STL and VTK files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mskseg.io.meshes import COORDINATE_SYSTEM_TAG, Mesh, mask_mesh, read_stl, structure_meshes, write_stl, write_vtk
from mskseg.volume import Volume

SPACING = (0.7, 0.5, 1.1)
ORIGIN = (-31.0, 12.5, 55.0)


def _rotation(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """Rodrigues rotation matrix."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * kx + (1 - np.cos(t)) * kx @ kx


#: oblique and axis-permuting (det +1), and the same mirrored (det -1, as some NIfTI headers give)
OBLIQUE = _rotation((1.0, 2.0, 0.5), 27.0) @ np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
MIRRORED = OBLIQUE @ np.diag([1.0, 1.0, -1.0])


def _sphere(direction: np.ndarray, radius: float = 7.0, shape=(30, 36, 22)) -> tuple[Volume, np.ndarray, int]:
    """A label map with a sphere (label 3) of ``radius`` mm; returns it, the centre (world mm) and its voxels."""
    grid = Volume(np.zeros(shape, np.uint8), SPACING, ORIGIN, direction)
    idx = np.indices(shape).reshape(3, -1).T
    world = grid.index_to_world(idx)
    centre = grid.index_to_world((np.asarray(shape) - 1) / 2.0)[0] + np.array([0.3, -0.2, 0.4])
    inside = (np.linalg.norm(world - centre, axis=1) < radius).reshape(shape)
    labels = np.where(inside, 3, 0).astype(np.uint8)
    return grid.with_array(labels), centre, int(inside.sum())


def _edge_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts of undirected edges and of directed edges (half-edges)."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    _, undirected = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    _, half = np.unique(directed, axis=0, return_counts=True)
    return undirected, half


def _check_closed_outward(mesh: Mesh, centre: np.ndarray) -> None:
    undirected, half = _edge_counts(mesh.faces)
    assert np.all(undirected == 2)  # closed: every edge shared by exactly two faces
    assert np.all(half == 1)  # consistently oriented: each edge is run once each way
    assert np.all(np.einsum("ij,ij->i", mesh.normals, mesh.vertices - centre) > 0)
    face_centres = mesh.vertices[mesh.faces].mean(axis=1)
    assert np.all(np.einsum("ij,ij->i", mesh.face_normals, face_centres - centre) > 0)
    assert np.allclose(np.linalg.norm(mesh.normals, axis=1), 1.0)


@pytest.mark.parametrize("direction", [OBLIQUE, MIRRORED], ids=["oblique", "mirrored"])
def test_sphere_on_an_oblique_anisotropic_offset_grid(direction: np.ndarray) -> None:
    labels, centre, voxels = _sphere(direction)
    meshes = structure_meshes(labels, {"ball": 3, "missing": 5})
    assert list(meshes) == ["ball"]  # an absent structure gives no mesh
    mesh = meshes["ball"]
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64 and mesh.normals.shape == (
        len(mesh.vertices), 3)
    diagonal = float(np.linalg.norm(SPACING))
    radial = np.linalg.norm(mesh.vertices - centre, axis=1)
    assert np.all(np.abs(radial - 7.0) <= diagonal)
    _check_closed_outward(mesh, centre)
    expected = voxels * labels.voxel_volume_mm3
    assert mesh.volume_mm3 == pytest.approx(expected, rel=0.05)


def test_vertices_are_mapped_to_world_exactly() -> None:
    """One voxel gives an octahedron whose corners lie half a voxel from its centre along each index axis."""
    grid = Volume(np.zeros((5, 6, 7), np.uint8), SPACING, ORIGIN, OBLIQUE)
    mask = np.zeros(grid.shape, bool)
    mask[1, 4, 6] = True  # touching the border: still closed
    mesh = mask_mesh(mask, grid)
    assert mesh is not None and len(mesh.vertices) == 6 and len(mesh.faces) == 8
    offsets = np.array([[s * 0.5 if a == b else 0.0 for b in range(3)] for a in range(3) for s in (-1, 1)])
    expected = np.asarray(ORIGIN) + ((np.array([1, 4, 6]) + offsets) * SPACING) @ OBLIQUE.T  # independent formula
    distance = np.linalg.norm(mesh.vertices[:, None] - expected[None], axis=-1)  # every vertex matches one corner
    assert np.all(distance.min(axis=1) < 1e-9) and np.all(distance.min(axis=0) < 1e-9)
    _check_closed_outward(mesh, grid.index_to_world([1, 4, 6])[0])


def test_coarser_step_and_smoothing_stay_closed_and_smoothing_fits_better() -> None:
    labels, centre, voxels = _sphere(OBLIQUE, radius=8.0)
    raw = structure_meshes(labels, {"ball": 3})["ball"]
    for step in (2, 3):
        coarse = structure_meshes(labels, {"ball": 3}, step_size=step)["ball"]
        assert len(coarse.faces) < len(raw.faces)
        _check_closed_outward(coarse, centre)
    smooth = structure_meshes(labels, {"ball": 3}, smoothing_iterations=10)["ball"]
    _check_closed_outward(smooth, centre)
    assert smooth.volume_mm3 == pytest.approx(voxels * labels.voxel_volume_mm3, rel=0.05)

    def rms(mesh: Mesh) -> float:
        return float(np.sqrt(np.mean((np.linalg.norm(mesh.vertices - centre, axis=1) - 8.0) ** 2)))

    assert rms(smooth) < rms(raw)


def test_bad_arguments() -> None:
    labels, _, _ = _sphere(np.eye(3))
    with pytest.raises(ValueError, match="background"):
        structure_meshes(labels, {"bg": 0})
    with pytest.raises(ValueError, match="step_size"):
        structure_meshes(labels, {"ball": 3}, step_size=0)
    assert mask_mesh(np.zeros(labels.shape, bool), labels) is None
    with pytest.raises(ValueError, match="shape"):
        mask_mesh(np.zeros((2, 2, 2), bool), labels)


def test_stl_round_trip(tmp_path: Path) -> None:
    labels, _, _ = _sphere(OBLIQUE)
    mesh = structure_meshes(labels, {"ball": 3})["ball"]
    path = write_stl(mesh, tmp_path / "out" / "ball.stl", name="ball")
    assert path == tmp_path / "out" / "ball.stl"
    assert [p.name for p in path.parent.iterdir()] == ["ball.stl"]  # no temporary file left
    raw = path.read_bytes()
    assert len(raw) == 84 + 50 * len(mesh.faces)
    assert not raw.startswith(b"solid") and COORDINATE_SYSTEM_TAG.encode() in raw[:80]
    back, header = read_stl(path)
    assert header == f"mskseg mesh ball {COORDINATE_SYSTEM_TAG}"
    assert len(back.vertices) == len(mesh.vertices) and len(back.faces) == len(mesh.faces)
    assert np.array_equal(back.vertices[back.faces], mesh.vertices[mesh.faces].astype(np.float32))
    assert np.allclose(_stl_normals(raw), mesh.face_normals, atol=1e-6)
    assert back.volume_mm3 == pytest.approx(mesh.volume_mm3, rel=1e-5)


def _stl_normals(raw: bytes) -> np.ndarray:
    records = np.frombuffer(raw, np.dtype([("n", "<f4", (3,)), ("v", "<f4", (9,)), ("a", "<u2")]), offset=84)
    return records["n"].astype(np.float64)


def _read_legacy_vtk(path: Path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """A minimal reader of what :func:`write_vtk` writes: (title, points, triangles, normals)."""
    data = path.read_bytes()
    pos = 0

    def line() -> str:
        nonlocal pos
        end = data.index(b"\n", pos)
        text, pos = data[pos:end].decode("ascii"), end + 1
        return text

    def block(count: int, width: int, dtype: str) -> np.ndarray:
        nonlocal pos
        if not binary:
            return np.array([line().split() for _ in range(count)], dtype=float).reshape(count, width)
        values = np.frombuffer(data, dtype, count * width, pos).reshape(count, width)
        pos += values.nbytes
        assert line() == ""  # the newline after binary data
        return values

    assert line() == "# vtk DataFile Version 4.2"
    title = line()
    binary = line() == "BINARY"
    assert line() == "DATASET POLYDATA"
    keyword, n, kind = line().split()
    assert keyword == "POINTS" and kind == "double"
    points = block(int(n), 3, ">f8")
    keyword, m, size = line().split()
    assert keyword == "POLYGONS" and int(size) == 4 * int(m)
    cells = block(int(m), 4, ">i4")
    assert line() == f"POINT_DATA {n}" and line() == "NORMALS Normals double"
    normals = block(int(n), 3, ">f8")
    assert pos == len(data)
    assert np.all(cells[:, 0] == 3)
    return title, points, cells[:, 1:].astype(np.int64), normals


@pytest.mark.parametrize("binary", [False, True], ids=["ascii", "binary"])
def test_vtk_file_parses_back(tmp_path: Path, binary: bool) -> None:
    labels, _, _ = _sphere(MIRRORED)
    mesh = structure_meshes(labels, {"ball": 3})["ball"]
    path = write_vtk(mesh, tmp_path / "ball.vtk", name="ball", binary=binary)
    text_head = path.read_bytes()[:200].decode("ascii", errors="replace")
    assert f"POINTS {len(mesh.vertices)} double" in text_head
    title, points, faces, normals = _read_legacy_vtk(path)
    assert title == f"mskseg mesh ball {COORDINATE_SYSTEM_TAG}"
    assert np.array_equal(points, mesh.vertices) and np.array_equal(faces, mesh.faces)
    assert np.array_equal(normals, mesh.normals)
    assert [p.name for p in tmp_path.iterdir()] == ["ball.vtk"]


def test_writers_refuse_an_empty_mesh(tmp_path: Path) -> None:
    empty = Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3)))
    for write in (write_stl, write_vtk):
        with pytest.raises(ValueError, match="no faces"):
            write(empty, tmp_path / "x.stl")
    assert list(tmp_path.iterdir()) == []
