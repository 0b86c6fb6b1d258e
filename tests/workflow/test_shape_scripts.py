"""The shape-model rule scripts' main(), run in sequence on a tiny two-structure dataset.

select_reference -> register_structure -> reference_landmarks -> warp_landmarks ->
correspondence_table -> shape_model, as the workflow chains them, on five subjects whose
femur (label 1) is the knobbly ellipsoid of :mod:`tests.registration.phantoms` with a
bump of varying size in a slightly different pose, and whose tibia (label 2) is a sphere
elsewhere; a sixth subject's femur is a thin hollow shell that no affine + diffeomorphism
can turn into a solid bone (it is about 1 mm thick and vanishes on the 2 mm working grid), so
its registration must be recorded as not converged and the model must leave it out. Fold 0
trains on s0-s3 and the shell, and tests on s4. Each subject also has "true" landmarks: a fixed set of unit
directions mapped onto its ellipsoid through its known pose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mskseg.io import read_volume, write_volume
from mskseg.io.landmarks import read_landmarks_csv, read_slicer_markups
from mskseg.io.tables import read_table, write_table
from mskseg.landmarks.correspondence import interior_faces
from mskseg.landmarks.surface import mask_surface, surface_distance
from mskseg.registration.masks import mirror_points
from mskseg.shape import load_shape_model
from mskseg.volume import Volume
from tests.conftest import ROTATED
from tests.registration.phantoms import ORIGIN, SPACING, bone, grid_points

GRID = (40, 44, 34)
AXES = np.array([14.0, 10.0, 8.0])  # the phantom ellipsoid's semi-axes (mm)
#: per subject: bump radius (mm), rotation about z (degrees), translation (mm)
POSES = {
    "s0": (3.0, 0.0, (0.0, 0.0, 0.0)),
    "s1": (2.0, 4.0, (1.5, -1.0, 0.5)),
    "s2": (4.0, -3.0, (-1.0, 1.5, -1.0)),
    "s3": (5.0, 2.0, (2.0, 1.0, 1.0)),
    "s4": (3.5, -4.0, (-1.5, -1.5, 0.5)),
    "s5": (3.0, 1.0, (0.5, 0.5, -0.5)),  # the hollow shell
}
NORMAL = ["s0", "s1", "s2", "s3", "s4"]
SHELL = "s5"
SUBJECTS = [*NORMAL, SHELL]
SHELL_IN = 0.8  # ~1 mm thick: it vanishes at the working spacing
TRAIN = ["s0", "s1", "s2", "s3", SHELL]
N_LANDMARKS = 60

SHAPE = {
    "labels": {"femur": 1, "tibia": 2}, "selection_spacing_mm": 3.0, "working_spacing_mm": 2.0,
    "margin_mm": 6.0, "min_dice": 0.85, "max_folding": 0.001, "backend": "simpleitk", "affine": {},
    "demons": {"shrink_factors": [2, 1], "iterations": [20, 10]}, "ants": {}, "n_landmarks": N_LANDMARKS,
    "landmark_seed": 0, "procrustes_scale": True, "n_modes": None, "variance_kept": None,
    "model_roles": ["train"], "quality": {"n_samples": 20, "max_modes": 3, "seed": 0}, "reference": None,
}


def _rotation_z(degrees: float) -> np.ndarray:
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def _directions(n: int = 40) -> np.ndarray:
    """``n`` unit vectors spread over the sphere (Fibonacci lattice)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (1.0 + 5**0.5) * k
    r = np.sqrt(1.0 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _subject(pts: np.ndarray, centre: np.ndarray, subject: str) -> tuple[np.ndarray, pd.DataFrame]:
    """(label array, true landmarks) of one subject."""
    bump, degrees, shift = POSES[subject]
    rot = _rotation_z(degrees)
    femur_centre = centre + np.array([0.0, 0.0, -6.0]) + np.asarray(shift)
    local = (pts - femur_centre) @ rot + femur_centre  # R^T (p - c) + c: the bone turned by R
    femur = bone(local, femur_centre, bump)
    if subject == SHELL:
        q = (local - femur_centre) / AXES
        r = (q**2).sum(axis=-1)
        femur = (r < 1.0) & (r > SHELL_IN)  # a thin hollow ellipsoid
    tibia = np.linalg.norm(pts - (centre + np.array([0.0, 0.0, 13.0])), axis=-1) < 5.0
    labels = np.zeros(pts.shape[:3], np.uint8)
    labels[femur] = 1
    labels[tibia & ~femur] = 2
    u = _directions()
    on_ellipsoid = u / np.sqrt(((u / AXES) ** 2).sum(axis=1))[:, None]
    femur_truth = femur_centre + on_ellipsoid @ rot.T
    tibia_truth = centre + np.array([0.0, 0.0, 13.0]) + 5.0 * u
    truth = pd.concat([
        pd.DataFrame({"structure": st, "index": np.arange(len(u)), "x": p[:, 0], "y": p[:, 1], "z": p[:, 2]})
        for st, p in (("tibia", tibia_truth), ("femur", femur_truth))  # not sorted by structure
    ], ignore_index=True)
    return labels, truth


def _build(root: Path) -> dict[str, dict[str, Path]]:
    pts = grid_points(GRID)
    centre = pts.reshape(-1, 3).mean(axis=0)
    files = {}
    for s in SUBJECTS:
        labels, truth = _subject(pts, centre, s)
        mask = root / "masks" / f"sub-{s}_mask.nii.gz"
        mask.parent.mkdir(parents=True, exist_ok=True)
        write_volume(Volume(labels, SPACING, ORIGIN, ROTATED), mask)
        truth_file = root / "truth" / f"sub-{s}_landmarks.csv"
        truth_file.parent.mkdir(parents=True, exist_ok=True)
        truth.to_csv(truth_file, index=False, encoding="utf-8")
        files[s] = {"mask": mask, "truth": truth_file}
    return files


def _run_model(root: Path, data: dict[str, dict[str, Path]], subjects: list[str], mirrored: bool,
               truth: bool = True, shape: dict | None = None) -> dict[str, object]:
    """select_reference + register_structure + reference_landmarks + warp_landmarks for one model."""
    from reference_landmarks import main as reference_landmarks
    from register_structure import main as register_structure
    from select_reference import main as select_reference
    from warp_landmarks import main as warp_landmarks

    settings = shape or SHAPE
    root.mkdir(parents=True, exist_ok=True)
    ref = {k: root / f"reference_{k}" for k in ("table.tsv", "image.nii.gz", "mask.nii.gz", "landmarks.csv",
                                              "markups.mrk.json", "truth.csv")}
    select_reference(masks=[data[s]["mask"] for s in subjects], subjects=subjects, members=[["femur", mirrored]],
                     shape=settings, table=ref["table.tsv"], image=ref["image.nii.gz"], mask=ref["mask.nii.gz"],
                     log=root / "select.log")
    reference_landmarks(mask=ref["mask.nii.gz"], table=ref["table.tsv"],
                        truth=[data[s]["truth"] for s in subjects] if truth else [],
                        truth_subjects=list(subjects) if truth else [], shape=settings,
                        landmarks=ref["landmarks.csv"], markups=ref["markups.mrk.json"], truth_out=ref["truth.csv"],
                        log=root / "reference_landmarks.log")
    out: dict[str, object] = {"reference": ref, "subjects": {}}
    for s in subjects:
        sub = {k: root / f"sub-{s}_structure-femur_{k}" for k in ("affine.tfm", "field.nii.gz", "registration.json",
                                                                  "landmarks.csv", "landmarks.mrk.json",
                                                                  "quality.json")}
        register_structure(mask=data[s]["mask"], reference=ref["image.nii.gz"], subject=s, structure="femur",
                           mirrored=mirrored, shape=settings, affine=sub["affine.tfm"], field=sub["field.nii.gz"],
                           record=sub["registration.json"], log=root / f"register_{s}.log")
        warp_landmarks(affine=sub["affine.tfm"], field=sub["field.nii.gz"], record=sub["registration.json"],
                       mask=data[s]["mask"], reference_landmarks=ref["landmarks.csv"],
                       reference_truth=ref["truth.csv"], truth=data[s]["truth"] if truth else None, subject=s,
                       structure="femur", mirrored=mirrored, shape=settings, landmarks=sub["landmarks.csv"],
                       markups=sub["landmarks.mrk.json"], quality=sub["quality.json"], log=root / f"warp_{s}.log")
        out["subjects"][s] = sub
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    return _build(tmp_path_factory.mktemp("shape_data"))


@pytest.fixture(scope="module")
def femur(data, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The unmirrored femur model, all six subjects, with truth, then table and shape model."""
    from correspondence_table import main as correspondence_table
    from landmarks_batch import main as landmarks_batch
    from shape_model import main as shape_model

    root = tmp_path_factory.mktemp("femur")
    run = _run_model(root, data, SUBJECTS, mirrored=False)
    subs = run["subjects"]
    run["table"] = root / "correspondence.tsv"
    batches = [SUBJECTS[:2], SUBJECTS[2:]]  # gathered per batch of subjects first, as the workflow does
    for i, members in enumerate(batches):
        landmarks_batch(records=[subs[s]["quality.json"] for s in members], subjects=members,
                        table=root / f"batch-{i:03d}_correspondence.tsv", log=root / f"batch-{i:03d}.log")
    correspondence_table(tables=[root / f"batch-{i:03d}_correspondence.tsv" for i in range(len(batches))],
                         reference=run["reference"]["table.tsv"], structures=["femur"], table=run["table"],
                         log=root / "correspondence.log")
    splits = pd.DataFrame({"split": 0, "subject": SUBJECTS, "patient": [f"p{s}" for s in SUBJECTS],
                           "role": ["train" if s in TRAIN else "test" for s in SUBJECTS]})
    write_table(splits, root / "splits.tsv")
    model = {k: root / f"model_{k}" for k in ("shape.npz", "shape.json", "quality.tsv", "quality.png",
                                            "quality.svg", "modes.png")}
    shape_model(correspondence=run["table"], splits=root / "splits.tsv",
                landmarks=[subs[s]["landmarks.csv"] for s in SUBJECTS], shape=SHAPE, dataset="toy", bone="femur",
                fold="0", model=model["shape.npz"], header=model["shape.json"], quality=model["quality.tsv"],
                quality_png=model["quality.png"], quality_svg=model["quality.svg"], modes=model["modes.png"],
                log=root / "shape_model.log")
    run["model"] = model
    run["root"] = root
    return run


def _record(run, s: str) -> dict:
    return json.loads(run["subjects"][s]["registration.json"].read_text(encoding="utf-8"))


def _quality(run, s: str) -> dict:
    return json.loads(run["subjects"][s]["quality.json"].read_text(encoding="utf-8"))


def test_reference_table_has_one_selected_normal_femur(femur) -> None:
    table = read_table(femur["reference"]["table.tsv"])
    assert sorted(table["subject"]) == sorted(SUBJECTS)
    assert table["selected"].sum() == 1
    chosen = table.loc[table["selected"], "subject"].item()
    assert chosen in NORMAL
    assert table["rank"].tolist() == list(range(1, len(SUBJECTS) + 1))
    assert table.loc[table["subject"] == SHELL, "rank"].item() == len(SUBJECTS)  # the shell overlaps worst
    assert femur["reference"]["image.nii.gz"].exists() and femur["reference"]["mask.nii.gz"].exists()
    ref_image = read_volume(femur["reference"]["image.nii.gz"])
    assert ref_image.spacing == pytest.approx((2.0, 2.0, 2.0))


def test_registrations_of_normal_femurs_converge(femur) -> None:
    for s in NORMAL:
        record = _record(femur, s)
        assert record["converged"] is True, (s, record["reason"])
        assert record["dice"] >= 0.85
        assert record["reason"] == ""
        assert record["subject"] == s and record["structure"] == "femur" and record["mirrored"] is False
        assert record["folding_fraction"] <= 0.001


def test_warped_landmarks_lie_on_each_subject_surface(femur, data) -> None:
    for s in NORMAL:
        sub = femur["subjects"][s]
        points = read_landmarks_csv(sub["landmarks.csv"])
        assert len(points) == N_LANDMARKS
        assert points["index"].tolist() == list(range(N_LANDMARKS))
        xyz = points[["x", "y", "z"]].to_numpy()
        dist = surface_distance(xyz, read_volume(data[s]["mask"]), label=1)
        assert dist.mean() < 1.0, (s, dist.mean())
        markups = read_slicer_markups(sub["landmarks.mrk.json"])
        assert len(markups) == N_LANDMARKS
        assert np.allclose(markups[["x", "y", "z"]].to_numpy(), xyz)
        quality = _quality(femur, s)
        assert quality["n_landmarks"] == N_LANDMARKS
        assert quality["surface_mean_mm"] == pytest.approx(dist.mean(), abs=1e-6)


def test_reference_landmarks_and_truth(femur, data) -> None:
    ref = femur["reference"]
    chosen = read_table(ref["table.tsv"]).query("selected")["subject"].item()
    mask = read_volume(ref["mask.nii.gz"])
    subject_mask = read_volume(data[chosen]["mask"])
    # the reference mask is the chosen femur, cropped (same world), off the crop border
    assert int(mask.array.sum()) == int((subject_mask.array == 1).sum())
    assert set(np.unique(mask.array)) == {0, 1}
    assert not any(mask.array.take(i, axis=a).any() for a in range(3) for i in (0, -1))
    vertices, faces = mask_surface(mask)
    kept = len(interior_faces(vertices, faces, mask))
    assert kept == len(faces), f"{len(faces) - kept} of {len(faces)} faces taken for field-of-view caps"
    points = read_landmarks_csv(ref["landmarks.csv"])
    assert len(points) == N_LANDMARKS and points["index"].tolist() == list(range(N_LANDMARKS))
    xyz = points[["x", "y", "z"]].to_numpy()
    assert surface_distance(xyz, subject_mask, label=1).max() < 1e-3  # NIfTI keeps the origin in float32
    # spread over the bone: landmarks on every side of it
    spread = xyz.max(axis=0) - xyz.min(axis=0)
    assert (spread > 0.8 * 2 * np.array([8.0, 8.0, 8.0])).all(), spread
    markups = read_slicer_markups(ref["markups.mrk.json"])
    assert np.allclose(markups[["x", "y", "z"]].to_numpy(), xyz)
    assert markups["label"].iloc[0] == "femur-1"
    truth = read_landmarks_csv(ref["truth.csv"])
    expected = pd.read_csv(data[chosen]["truth"]).query("structure == 'femur'").sort_values("index")
    assert truth["index"].tolist() == list(range(40))  # the chosen subject's femur, sorted
    assert np.allclose(truth[["x", "y", "z"]].to_numpy(), expected[["x", "y", "z"]].to_numpy())


def test_truth_errors_are_recorded_and_small(femur) -> None:
    for s in NORMAL:
        quality = _quality(femur, s)
        assert quality["truth_n"] == 40
        # every true point is carried from the reference's own true point: the mapping between
        # two translated/rotated ellipsoids is found up to the bump's pull
        assert quality["truth_mean_mm"] < 1.2, (s, quality["truth_mean_mm"])
        assert quality["truth_max_mm"] >= quality["truth_p95_mm"] >= 0


def test_hollow_shell_is_not_converged_and_left_out(femur) -> None:
    record = _record(femur, SHELL)
    assert record["converged"] is False
    assert record["dice"] < 0.5
    assert "Dice after warping" in record["reason"]
    assert record["dice"] < 0.85
    quality = _quality(femur, SHELL)
    assert quality["converged"] is False and quality["reason"] == record["reason"]
    log = (femur["root"] / "correspondence.log").read_text(encoding="utf-8")
    excluded = [line for line in log.splitlines() if "EXCLUDED" in line]
    assert len(excluded) == 1 and f"EXCLUDED {SHELL} femur" in excluded[0]


def test_correspondence_table_has_one_row_per_subject(femur) -> None:
    table = read_table(femur["table"])
    assert table["subject"].tolist() == SUBJECTS
    assert table["converged"].tolist() == [s != SHELL for s in SUBJECTS]
    for column in ("dice", "surface_mean_mm", "truth_mean_mm", "n_landmarks", "mirrored", "reason"):
        assert column in table.columns
    assert not [c for c in table.columns if c.startswith("trim")]  # trimming off: no trim columns


def test_the_reference_is_marked_and_left_out_of_the_means(femur) -> None:
    table = read_table(femur["table"])
    chosen = read_table(femur["reference"]["table.tsv"]).query("selected")["subject"].item()
    assert table.loc[table["reference"], "subject"].tolist() == [chosen]
    ref_row = table[table["reference"]].iloc[0]
    assert ref_row["dice"] > 0.99 and ref_row["truth_mean_mm"] < 0.3  # registered to itself: it would flatter
    others = table[~table["reference"] & (table["subject"] != SHELL)]
    log = (femur["root"] / "correspondence.log").read_text(encoding="utf-8")
    assert f"5 of 6 instances enter the models; mean over 4 of them (the reference {chosen}:femur" in log
    line = next(x for x in log.splitlines() if x.startswith("dice"))
    assert float(line.split()[-1]) == pytest.approx(others["dice"].mean(), abs=1e-6)


def test_shape_model_uses_the_converged_train_subjects(femur) -> None:
    model_files = femur["model"]
    model = load_shape_model(model_files["shape.npz"], model_files["shape.json"])
    assert sorted(model.subjects) == [f"{s}:femur" for s in TRAIN if s != SHELL]
    assert model.mean.shape == (N_LANDMARKS, 3)
    header = json.loads(model_files["shape.json"].read_text(encoding="utf-8"))
    left_out = header["metadata"]["left_out"]
    assert set(left_out) == {f"{SHELL}:femur", "s4:femur"}
    assert "did not converge" in left_out[f"{SHELL}:femur"]
    assert "test" in left_out["s4:femur"]
    quality = read_table(model_files["quality.tsv"])
    assert len(quality) >= 1 and "n_modes" in quality.columns
    for k in ("quality.png", "quality.svg", "modes.png"):
        assert model_files[k].stat().st_size > 0
    assert model_files["quality.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in model_files["quality.svg"].read_bytes()[:2000]


def test_mirrored_member_lands_on_the_unmirrored_subject(data, tmp_path: Path) -> None:
    run = _run_model(tmp_path / "mirrored", data, NORMAL, mirrored=True)
    table = read_table(run["reference"]["table.tsv"])
    assert table["mirrored"].tolist() == [True] * len(NORMAL)
    assert table["selected"].sum() == 1
    ref_points = read_landmarks_csv(run["reference"]["landmarks.csv"])[["x", "y", "z"]].to_numpy()
    ref_subject = table.loc[table["selected"], "subject"].item()
    # the reference landmarks live in the mirrored world: on the mirrored reference surface
    ref_mask = read_volume(data[ref_subject]["mask"])
    assert surface_distance(mirror_points(ref_points), ref_mask, label=1).mean() < 0.5
    written = read_volume(run["reference"]["mask.nii.gz"])  # the mirrored crop, its reflection kept on disk
    assert np.linalg.det(written.direction) == pytest.approx(-np.linalg.det(ref_mask.direction))
    assert surface_distance(ref_points, written).max() < 1e-3
    for s in NORMAL:
        record = _record(run, s)
        assert record["converged"] is True and record["mirrored"] is True, record["reason"]
        points = read_landmarks_csv(run["subjects"][s]["landmarks.csv"])[["x", "y", "z"]].to_numpy()
        mask = read_volume(data[s]["mask"])
        assert surface_distance(points, mask, label=1).mean() < 1.0
        quality = _quality(run, s)
        assert quality["mirrored"] is True
        assert quality["truth_mean_mm"] < 1.2, (s, quality["truth_mean_mm"])


def test_without_truth_no_truth_keys(data, tmp_path: Path) -> None:
    from reference_landmarks import main as reference_landmarks
    from warp_landmarks import main as warp_landmarks

    subjects = ["s0", "s1", "s2"]
    run = _run_model(tmp_path / "no_truth", data, subjects, mirrored=False, truth=False)
    ref = run["reference"]
    assert read_landmarks_csv(ref["truth.csv"]).empty
    assert ref["truth.csv"].read_text(encoding="utf-8").strip() == "index,x,y,z"
    for s in subjects:
        quality = _quality(run, s)
        assert not [k for k in quality if k.startswith("truth")]
        assert quality["surface_mean_mm"] < 1.0
    # a subject with a truth file but no reference truth: still no truth_* keys
    sub = run["subjects"]["s1"]
    warp_landmarks(affine=sub["affine.tfm"], field=sub["field.nii.gz"], record=sub["registration.json"],
                   mask=data["s1"]["mask"], reference_landmarks=ref["landmarks.csv"], reference_truth=ref["truth.csv"],
                   truth=data["s1"]["truth"], subject="s1", structure="femur", mirrored=False, shape=SHAPE,
                   landmarks=tmp_path / "l.csv", markups=tmp_path / "l.mrk.json", quality=tmp_path / "q.json")
    quality = json.loads((tmp_path / "q.json").read_text(encoding="utf-8"))
    assert not [k for k in quality if k.startswith("truth")]
    # truth files that do not include the reference subject: the reference truth is empty
    reference_landmarks(mask=ref["mask.nii.gz"], table=ref["table.tsv"], truth=[data["s4"]["truth"]],
                        truth_subjects=["s4"], shape=SHAPE,
                        landmarks=tmp_path / "r.csv", markups=tmp_path / "r.mrk.json", truth_out=tmp_path / "rt.csv")
    assert read_landmarks_csv(tmp_path / "rt.csv").empty


def test_reference_landmarks_cover_the_whole_bone_with_zero_margin(data, tmp_path: Path) -> None:
    from select_reference import main as select_reference

    subjects = ["s0", "s1", "s2"]
    select_reference(masks=[data[s]["mask"] for s in subjects], subjects=subjects, members=[["femur", False]],
                     shape=dict(SHAPE, margin_mm=0.0), table=tmp_path / "t.tsv", image=tmp_path / "i.nii.gz",
                     mask=tmp_path / "m.nii.gz")
    chosen = read_table(tmp_path / "t.tsv").query("selected")["subject"].item()
    femur = read_volume(data[chosen]["mask"]).array == 1
    assert not any(femur.take([0, -1], axis=a).any() for a in range(3))  # the field of view cuts nothing
    mask = read_volume(tmp_path / "m.nii.gz")
    vertices, faces = mask_surface(mask)
    kept = len(interior_faces(vertices, faces, mask))
    assert kept == len(faces), f"{len(faces) - kept} of {len(faces)} faces taken for field-of-view caps"


# --- trimming: every femur trimmed to the same length from its inferior end ------------------------


def _cut_by_the_field_of_view(source: Path, target: Path, slices: int) -> None:
    """The subject's mask with its first ``slices`` index-1 slices gone (ROTATED: index 1 is -z): a field of
    view that cuts the femur from above."""
    vol = read_volume(source)
    origin = vol.index_to_world(np.array([[0.0, slices, 0.0]]))[0]
    write_volume(Volume(vol.array[:, slices:, :].copy(), vol.spacing, tuple(origin), vol.direction), target)


def test_trimmed_femurs_through_every_script(data, tmp_path: Path) -> None:
    from correspondence_table import main as correspondence_table
    from landmarks_batch import main as landmarks_batch
    from shape_model import main as shape_model

    from mskseg.registration.trim import TrimSpec, cut_margin_mm, point_depths, trim_structure

    spec = TrimSpec(11.0, "inferior")
    shape = dict(SHAPE, trim=spec.to_dict())
    femur = read_volume(data["s3"]["mask"]).with_array((read_volume(data["s3"]["mask"]).array == 1).astype(np.uint8))
    top = int(np.flatnonzero(femur.array.any(axis=(0, 2)))[0])  # the femur's highest slice
    cut = dict(data)
    cut["s3"] = {**data["s3"], "mask": tmp_path / "sub-s3_cut_mask.nii.gz"}
    _cut_by_the_field_of_view(data["s3"]["mask"], cut["s3"]["mask"], top + 8)  # 8 mm of 16 left
    subjects = ["s0", "s1", "s2", "s3"]
    run = _run_model(tmp_path / "trimmed", cut, subjects, mirrored=False, shape=shape)
    ref = run["reference"]
    scores = read_table(ref["table.tsv"])
    assert scores.set_index("subject")["trim_short"].to_dict() == {s: s == "s3" for s in subjects}
    chosen = scores.query("selected")["subject"].item()
    assert chosen != "s3"
    # the reference mask is the trimmed femur; no reference landmark on the trim's cut
    ref_mask = read_volume(ref["mask.nii.gz"])
    own = read_volume(cut[chosen]["mask"])
    expected = trim_structure(own.with_array((own.array == 1).astype(np.uint8)), spec).mask
    assert int(ref_mask.array.sum()) == int(expected.array.sum()) < int((own.array == 1).sum())
    points = read_landmarks_csv(ref["landmarks.csv"])[["x", "y", "z"]].to_numpy()
    assert point_depths(points, ref_mask, spec).max() <= spec.length_mm - cut_margin_mm(ref_mask, spec) + 1e-6
    assert surface_distance(points, own, label=1).max() < 1e-3  # on the chosen femur's own (anatomical) surface
    for s in subjects:
        record = _record(run, s)
        assert record["trim_length_mm"] == 11.0 and record["trim_from"] == "inferior"
        assert record["trim_short"] is (s == "s3") and record["converged"] is True, record["reason"]
        quality = _quality(run, s)
        assert quality["trim_short"] is (s == "s3") and quality["trim_extent_mm"] == record["trim_extent_mm"]
        if s != "s3":
            assert 14.0 < record["trim_extent_mm"] < 18.0 and quality["surface_mean_mm"] < 1.0
    assert _record(run, "s3")["trim_extent_mm"] < 11.0
    log = (tmp_path / "trimmed" / "register_s3.log").read_text(encoding="utf-8")
    assert "SHORT s3 femur: shorter than the trim: 8.0 mm from its inferior end < 11 mm" in log
    # the table marks the reference and names the short one; the model leaves it out
    root = tmp_path / "trimmed"
    subs = run["subjects"]
    landmarks_batch(records=[subs[s]["quality.json"] for s in subjects], subjects=subjects,
                    table=root / "batch.tsv", log=root / "batch.log")
    correspondence_table(tables=[root / "batch.tsv"], reference=ref["table.tsv"], structures=["femur"],
                         table=root / "correspondence.tsv", log=root / "correspondence.log")
    table = read_table(root / "correspondence.tsv")
    assert table.loc[table["reference"], "subject"].tolist() == [chosen]
    assert table["trim_short"].tolist() == [s == "s3" for s in subjects]
    log = (root / "correspondence.log").read_text(encoding="utf-8")
    assert "EXCLUDED s3 femur: shorter than the trim" in log and "mean over 2 of them" in log
    splits = pd.DataFrame({"split": 0, "subject": subjects, "patient": subjects, "role": "train"})
    write_table(splits, root / "splits.tsv")
    outputs = {k: root / f"model_{k}" for k in ("shape.npz", "shape.json", "quality.tsv", "quality.png",
                                              "quality.svg", "modes.png")}
    shape_model(correspondence=root / "correspondence.tsv", splits=root / "splits.tsv",
                landmarks=[subs[s]["landmarks.csv"] for s in subjects], shape=shape, dataset="toy", bone="femur",
                fold="0", model=outputs["shape.npz"], header=outputs["shape.json"], quality=outputs["quality.tsv"],
                quality_png=outputs["quality.png"], quality_svg=outputs["quality.svg"], modes=outputs["modes.png"],
                log=root / "shape_model.log")
    model = load_shape_model(outputs["shape.npz"], outputs["shape.json"])
    assert sorted(model.subjects) == ["s0:femur", "s1:femur", "s2:femur"]
    header = json.loads(outputs["shape.json"].read_text(encoding="utf-8"))
    assert "shorter than the trim" in header["metadata"]["left_out"]["s3:femur"]
