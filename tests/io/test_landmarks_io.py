"""Landmark files: CSV and 3D Slicer Markups JSON round trips, RAS input, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mskseg.io.landmarks import (
    SLICER_SCHEMA,
    LandmarkFileError,
    landmark_frame,
    read_landmarks_csv,
    read_slicer_markups,
    write_landmarks_csv,
    write_slicer_markups,
)

POINTS = np.array([[0.1, -2.0 / 3.0, 1e-7], [-123.456789012345, 5.0, 77.25], [3.0, 1e6 / 7, -0.3]])


def no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".tmp")]


def markups_file(path: Path, markup: dict) -> Path:
    path.write_text(json.dumps({"@schema": SLICER_SCHEMA, "markups": [markup]}), encoding="utf-8")
    return path


# --- CSV -------------------------------------------------------------------------------------


def test_csv_round_trip_of_an_array_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "points.csv"
    write_landmarks_csv(POINTS, path)
    back = read_landmarks_csv(path)
    assert list(back.columns) == ["index", "x", "y", "z"]
    assert back["index"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(back[["x", "y", "z"]].to_numpy(), POINTS)
    assert no_temporary_files(path.parent)


def test_csv_round_trip_keeps_labels_and_index_gaps(tmp_path: Path) -> None:
    frame = pd.DataFrame({
        "index": [4, 0, 9],
        "x": POINTS[:, 0], "y": POINTS[:, 1], "z": POINTS[:, 2],
        "label": ["épicondyle, medial", 'say "NA"', "NA"],
    })
    path = tmp_path / "points.csv"
    write_landmarks_csv(frame, path)
    back = read_landmarks_csv(path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert back["index"].dtype.kind == "i"


def test_csv_with_only_a_header_is_an_empty_table(tmp_path: Path) -> None:
    path = tmp_path / "none.csv"
    path.write_text("index,x,y,z\n", encoding="utf-8")
    assert len(read_landmarks_csv(path)) == 0
    write_landmarks_csv(np.zeros((0, 3)), tmp_path / "empty.csv")
    assert len(read_landmarks_csv(tmp_path / "empty.csv")) == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("index,x,y\n0,1,2\n", "missing column"),
        ("index,x,y,z\n0,1,nan,3\n", "finite"),
        ("index,x,y,z\n0,1,,3\n", "finite"),
        ("index,x,y,z\n0,1,abc,3\n", "finite"),
        ("index,x,y,z\n0,1,inf,3\n", "finite"),
        ("index,x,y,z\n0,1,2,3\n0,4,5,6\n", "duplicate index 0"),
        ("index,x,y,z\n1.5,1,2,3\n", "integers"),
        ("index,x,y,z\n-1,1,2,3\n", "integers"),
        ("", "not a readable CSV"),
        ('index,x,y,z\n0,1,2,3,4,5\n"', "not a readable CSV"),
    ],
)
def test_bad_csv_raises_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LandmarkFileError, match=problem) as info:
        read_landmarks_csv(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError) and info.value.path == path


def test_writers_reject_bad_points(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-finite"):
        write_landmarks_csv(np.array([[0.0, np.nan, 1.0]]), tmp_path / "a.csv")
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        write_slicer_markups(np.zeros((3, 2)), tmp_path / "a.mrk.json")
    with pytest.raises(ValueError, match="2 labels for 3 points"):
        write_slicer_markups(POINTS, tmp_path / "a.mrk.json", labels=["a", "b"])
    with pytest.raises(ValueError, match="duplicate index 1"):
        landmark_frame(pd.DataFrame({"index": [1, 1], "x": [0, 0], "y": [0, 0], "z": [0, 0]}))
    assert not list(tmp_path.iterdir())


# --- Slicer markups --------------------------------------------------------------------------


def test_markups_file_follows_the_slicer_layout(tmp_path: Path) -> None:
    path = tmp_path / "femur.mrk.json"
    write_slicer_markups(POINTS, path, name="femur")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["@schema"] == SLICER_SCHEMA
    (markup,) = document["markups"]
    assert (markup["type"], markup["coordinateSystem"], markup["coordinateUnits"]) == ("Fiducial", "LPS", "mm")
    points = markup["controlPoints"]
    assert [p["id"] for p in points] == ["1", "2", "3"]
    assert [p["label"] for p in points] == ["femur-1", "femur-2", "femur-3"]
    assert [p["position"] for p in points] == POINTS.tolist()
    for p in points:
        assert p["positionStatus"] == "defined"
        assert p["selected"] is p["locked"] is p["visibility"] is True
        assert len(p["orientation"]) == 9
    assert no_temporary_files(tmp_path)


def test_markups_round_trip_with_labels_and_index_gaps(tmp_path: Path) -> None:
    path = tmp_path / "a.mrk.json"
    write_slicer_markups(POINTS, path, labels=["tibia plateau", "ñ", "3"])
    back = read_slicer_markups(path)
    assert back["index"].tolist() == [0, 1, 2]
    assert back["label"].tolist() == ["tibia plateau", "ñ", "3"]
    np.testing.assert_array_equal(back[["x", "y", "z"]].to_numpy(), POINTS)

    frame = back.assign(index=[2, 7, 0])
    write_slicer_markups(frame, path)
    again = read_slicer_markups(path)
    pd.testing.assert_frame_equal(again, frame, check_dtype=False)


def test_ras_markups_are_converted_to_lps(tmp_path: Path) -> None:
    point = {"id": "1", "label": "F-1", "position": [1.0, -2.0, 3.5], "positionStatus": "defined"}
    ras = read_slicer_markups(markups_file(tmp_path / "ras.mrk.json", {
        "type": "Fiducial", "coordinateSystem": "RAS", "controlPoints": [point]}))
    np.testing.assert_array_equal(ras[["x", "y", "z"]].to_numpy(), [[-1.0, 2.0, 3.5]])
    lps = read_slicer_markups(markups_file(tmp_path / "lps.mrk.json", {
        "type": "Fiducial", "controlPoints": [point]}))  # no coordinateSystem: LPS (schema default)
    np.testing.assert_array_equal(lps[["x", "y", "z"]].to_numpy(), [[1.0, -2.0, 3.5]])
    um = read_slicer_markups(markups_file(tmp_path / "um.mrk.json", {
        "type": "Fiducial", "coordinateUnits": "um", "controlPoints": [point]}))
    np.testing.assert_allclose(um[["x", "y", "z"]].to_numpy(), [[1e-3, -2e-3, 3.5e-3]])


def test_unplaced_points_are_left_out_and_ids_give_the_index(tmp_path: Path) -> None:
    points = [
        {"id": "1", "label": "a", "position": [0.0, 0.0, 0.0], "positionStatus": "defined"},
        {"id": "2", "label": "b", "position": [0.0, 0.0, 0.0], "positionStatus": "undefined"},
        {"id": "5", "label": "c", "position": [1.0, 2.0, 3.0]},
    ]
    back = read_slicer_markups(markups_file(tmp_path / "a.mrk.json", {"type": "Fiducial", "controlPoints": points}))
    assert back["index"].tolist() == [0, 4]
    assert back["label"].tolist() == ["a", "c"]
    points[2]["id"] = "vtkMRMLMarkupsFiducialNode1-3"  # ids that are not numbers: list position
    back = read_slicer_markups(markups_file(tmp_path / "b.mrk.json", {"type": "Fiducial", "controlPoints": points}))
    assert back["index"].tolist() == [0, 2]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not a JSON file"),
        (b"\xff\xfe\x00garbage", "not a JSON file"),
        ("[1, 2, 3]", "exactly one markup"),
        ('{"markups": []}', "exactly one markup"),
        ('{"markups": [{"type": "Fiducial"}, {"type": "Fiducial"}]}', "exactly one markup, found 2"),
        ('{"markups": [{"coordinateSystem": "IJK", "controlPoints": []}]}', "coordinateSystem"),
        ('{"markups": [{"coordinateUnits": "cm", "controlPoints": []}]}', "coordinateUnits"),
        ('{"markups": [{"controlPoints": [{"id": "1", "position": [1, 2]}]}]}', "three finite numbers"),
        ('{"markups": [{"controlPoints": [{"id": "1", "position": [1, NaN, 2]}]}]}', "three finite numbers"),
        ('{"markups": [{"controlPoints": [{"id": "1", "position": [1, "2", 3]}]}]}', "three finite numbers"),
        ('{"markups": [{"controlPoints": [{"id": "2", "position": [1, 2, 3]},'
         ' {"id": "2", "position": [4, 5, 6]}]}]}', "duplicate index 1"),
    ],
)
def test_bad_markups_raise_naming_the_file(tmp_path: Path, content: str | bytes, problem: str) -> None:
    path = tmp_path / "bad.mrk.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(LandmarkFileError, match=problem) as info:
        read_slicer_markups(path)
    assert str(path) in str(info.value)


def test_missing_files_raise_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_landmarks_csv(tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError):
        read_slicer_markups(tmp_path / "none.mrk.json")
