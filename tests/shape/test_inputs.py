"""fold_shapes: one fold's training landmark sets, converged only, mirrored ones reflected back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mskseg.io.landmarks import write_landmarks_csv
from mskseg.io.tables import read_table, write_table
from mskseg.shape.inputs import fold_shapes

N = 12


def _points(k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.normal(0.0, 10.0, (N, 3)) + np.array([50.0 * k, 0.0, 0.0])


def _landmark_file(root: Path, subject: str, structure: str, points: np.ndarray, shuffle: bool = False) -> Path:
    path = root / f"sub-{subject}_structure-{structure}_landmarks.csv"
    frame = pd.DataFrame({"index": np.arange(len(points)), "x": points[:, 0], "y": points[:, 1], "z": points[:, 2]})
    if shuffle:  # rows out of order: fold_shapes must order by index
        frame = frame.iloc[np.random.default_rng(0).permutation(len(frame))]
    write_landmarks_csv(frame, path)
    return path


@pytest.fixture
def dataset(tmp_path: Path):
    """Six subjects of one femur model: a, b, c, d train in fold 0 (d did not converge), e test, f val.

    ``b`` is a mirrored (left) femur. In fold 1 the roles differ.
    """
    subjects = ["a", "b", "c", "d", "e", "f"]
    correspondence = pd.DataFrame({
        "subject": subjects, "structure": "femur_right",
        "mirrored": [False, True, False, False, False, False],
        "converged": [True, True, True, False, True, True],
        "reason": ["", "", "", "Dice after warping 0.412 < min_dice 0.85", "", ""],
        "dice": [0.97, 0.96, 0.95, 0.41, 0.97, 0.96],
    })
    write_table(correspondence, tmp_path / "correspondence.tsv")
    splits = pd.DataFrame({
        "split": [0] * 6 + [1] * 6, "subject": subjects * 2, "patient": [f"p{s}" for s in subjects] * 2,
        "role": ["train", "train", "train", "train", "test", "val", "test", "train", "train", "train", "train", "val"],
    })
    write_table(splits, tmp_path / "splits.tsv")
    files = [_landmark_file(tmp_path, s, "femur_right", _points(k), shuffle=(s == "c"))
             for k, s in enumerate(subjects)]
    return read_table(tmp_path / "correspondence.tsv"), read_table(tmp_path / "splits.tsv"), files


def test_only_converged_train_subjects_of_the_fold(dataset) -> None:
    correspondence, splits, files = dataset
    keys, shapes, left_out = fold_shapes(correspondence, splits, files, fold="0", roles=["train"])
    assert keys == ["a:femur_right", "b:femur_right", "c:femur_right"]
    assert shapes.shape == (3, N, 3)
    assert set(left_out) == {"d:femur_right", "e:femur_right", "f:femur_right"}
    assert left_out["d:femur_right"] == "registration did not converge: Dice after warping 0.412 < min_dice 0.85"
    assert left_out["e:femur_right"] == "role test in fold 0"
    assert left_out["f:femur_right"] == "role val in fold 0"


def test_points_come_in_index_order_and_mirrored_ones_reflected(dataset) -> None:
    correspondence, splits, files = dataset
    _, shapes, _ = fold_shapes(correspondence, splits, files, fold="0", roles=["train"])
    assert np.allclose(shapes[0], _points(0))
    assert np.allclose(shapes[2], _points(2))  # the file's rows were shuffled
    mirrored = _points(1) * [-1.0, 1.0, 1.0]  # b is mirrored: x negated relative to the file
    assert np.allclose(shapes[1], mirrored)


def test_another_fold_and_several_roles(dataset) -> None:
    correspondence, splits, files = dataset
    keys, _shapes, left_out = fold_shapes(correspondence, splits, files, fold="1", roles=["train"])
    assert keys == ["b:femur_right", "c:femur_right", "e:femur_right"]
    assert left_out["a:femur_right"] == "role test in fold 1"
    assert left_out["d:femur_right"].startswith("registration did not converge")
    keys, _, _ = fold_shapes(correspondence, splits, files, fold=1, roles=["train", "val"])
    assert keys == ["b:femur_right", "c:femur_right", "e:femur_right", "f:femur_right"]


def test_subjects_missing_from_the_fold_are_left_out(dataset) -> None:
    correspondence, splits, files = dataset
    splits = splits[~((splits["split"] == "0") & (splits["subject"] == "a"))]
    extra = pd.concat([correspondence, correspondence.iloc[[2]].assign(subject="g")], ignore_index=True)
    with pytest.raises(ValueError, match="only 2 usable shapes"):
        fold_shapes(extra, splits, files, fold="0", roles=["train"])
    _, _, left_out = fold_shapes(extra, splits, files, fold="0", roles=["train", "test"])
    assert left_out["a:femur_right"] == "role none in fold 0"
    assert left_out["g:femur_right"] == "role none in fold 0"


def test_converged_given_as_text(dataset) -> None:
    correspondence, splits, files = dataset
    text = correspondence.assign(converged=correspondence["converged"].map({True: "TRUE", False: "false"}),
                                 mirrored=correspondence["mirrored"].map({True: "1", False: "0"}))
    keys, shapes, left_out = fold_shapes(text, splits, files, fold="0", roles=["train"])
    assert keys == ["a:femur_right", "b:femur_right", "c:femur_right"]
    assert np.allclose(shapes[1], _points(1) * [-1.0, 1.0, 1.0])
    assert "d:femur_right" in left_out


def test_unknown_fold_raises(dataset) -> None:
    correspondence, splits, files = dataset
    with pytest.raises(ValueError, match="fold '7' is not in the splits table"):
        fold_shapes(correspondence, splits, files, fold="7", roles=["train"])


def test_fewer_than_three_usable_shapes_raise(dataset) -> None:
    correspondence, splits, files = dataset
    fewer = correspondence.assign(converged=[True, True, False, False, True, True])
    with pytest.raises(ValueError, match=r"fold 0: only 2 usable shapes \(need >= 3") as err:
        fold_shapes(fewer, splits, files, fold="0", roles=["train"])
    assert "c:femur_right" in str(err.value) and "d:femur_right" in str(err.value)  # says what was left out
    with pytest.raises(ValueError, match="only 0 usable shapes"):
        fold_shapes(correspondence, splits, files, fold="0", roles=["nobody"])


def test_missing_landmark_file_raises(dataset) -> None:
    correspondence, splits, files = dataset
    without_c = [f for f in files if not f.name.startswith("sub-c_")]
    with pytest.raises(ValueError, match=r"no landmark file sub-c_structure-femur_right_landmarks.csv"):
        fold_shapes(correspondence, splits, without_c, fold="0", roles=["train"])
    # a left-out subject needs no file
    without_d = [f for f in files if not f.name.startswith("sub-d_")]
    keys, _, _ = fold_shapes(correspondence, splits, without_d, fold="0", roles=["train"])
    assert len(keys) == 3


def test_landmark_sets_of_different_sizes_raise(dataset, tmp_path: Path) -> None:
    correspondence, splits, files = dataset
    other = tmp_path / "other"
    other.mkdir()
    short = _landmark_file(other, "c", "femur_right", _points(2)[:5])
    mixed = [short if f.name.startswith("sub-c_") else f for f in files]
    with pytest.raises(ValueError, match="landmark sets differ in size"):
        fold_shapes(correspondence, splits, mixed, fold="0", roles=["train"])


def test_bones_shorter_than_the_trim_are_left_out(dataset, tmp_path: Path) -> None:
    correspondence, splits, files = dataset
    trimmed = correspondence.assign(trim_length_mm=60.0, trim_from="inferior",
                                    trim_extent_mm=[75.0, 52.5, 80.0, 70.0, 66.0, 61.0],
                                    trim_short=[False, True, False, False, False, False])
    write_table(trimmed, tmp_path / "trimmed.tsv")  # read back as a workflow reads it
    keys, shapes, left_out = fold_shapes(read_table(tmp_path / "trimmed.tsv"), splits, files, fold="1",
                                         roles=["train", "val"])
    assert keys == ["c:femur_right", "e:femur_right", "f:femur_right"] and shapes.shape == (3, N, 3)
    assert "shorter than the trim: 52.5 mm from its inferior end < 60 mm" in left_out["b:femur_right"]
    assert "did not converge" in left_out["d:femur_right"]  # not converged comes first
    # a table without trim columns (trimming off) leaves nobody out for it
    keys_off, _, left_off = fold_shapes(correspondence, splits, files, fold="1", roles=["train", "val"])
    assert "b:femur_right" in keys_off and "b:femur_right" not in left_off
