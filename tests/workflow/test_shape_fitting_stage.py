"""The knee paper's method (``kind: shape_fitting``) through Snakemake on six small knee phantoms, one fold.

The fold trains the 2D pre-segmentation, a shape regression network per bone on the fold's shape models, and the
local 3D U-Net at the selected cartilage landmarks; each test subject is predicted and scored beside the 2D U-Net,
and the landmark table scores the fitted shapes against the warped landmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mskseg.io import read_volume, write_volume
from mskseg.io.landmarks import read_landmarks_csv
from mskseg.io.tables import read_table
from mskseg.synthetic import generate_subject
from tests.workflow.wf import snakemake, write_config

pytestmark = pytest.mark.slow
LABELS = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
TEST = ("k4", "k5")
STEPS = {"to_device", "presegmentation", "boxes", "crops", "shape_fit", "refinement", "ensemble", "to_host",
         "postprocess"}


def _dataset(root: Path) -> tuple[Path, Path]:
    rows, roles = [], []
    for i in range(6):
        s = generate_subject("knee", i, seed=4, shape=(32, 56, 56), spacing=(3.2, 2.5, 2.5))
        sid = f"k{i}"
        write_volume(s.image, root / f"{sid}_img.nii.gz")
        write_volume(s.mask, root / f"{sid}_seg.nii.gz")
        rows.append((sid, f"{sid}_img.nii.gz", f"{sid}_seg.nii.gz"))
        roles.append(("0", sid, "test" if sid in TEST else "val" if i == 3 else "train"))
    pd.DataFrame(rows, columns=["subject", "image", "label"]).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame(roles, columns=["split", "subject", "role"]).to_csv(root / "split.tsv", sep="\t", index=False)
    return root / "manifest.csv", root / "split.tsv"


def _config(manifest: Path, split: Path, counts: dict[str, int]) -> dict:
    tiny = {"epochs": 2, "steps_per_epoch": 3, "batch_size": 4, "lr": 0.01, "seed": 1}
    return {"datasets": {"knee": {
        "modality": "mri", "labels": LABELS, "bones": ["femur", "tibia"],
        "cartilage": ["femoral_cartilage", "tibial_cartilage"],
        "source": {"manifest": {"path": str(manifest)}},
        "split": {"method": "fixed", "file": str(split)},
        "preprocess": {"crop": {"structures": ["femur", "tibia"], "margin_mm": 5}},
        "shape": {"n_landmarks": 60, "working_spacing_mm": 3.0, "selection_spacing_mm": 4.0,
                  "demons": {"shrink_factors": [2, 1], "iterations": [20, 10]},
                  "quality": {"n_samples": 10, "max_modes": 2}},
        "methods": {
            "unet2d": {"kind": "trained", "threads": 1, "network": {"name": "unet2d", "base": 4, "depth": 2},
                       "train": tiny},
            "fit": {"kind": "shape_fitting", "presegmentation": "unet2d", "threads": 1, "postprocess": True,
                    "regression": {"cube_size": 16, "base_features": 4, "margin_mm": 4, "epochs": 2, "lr": 0.01,
                                   "batch_size": 2},
                    "crops_per_subject": 2,
                    "landmarks": {"counts": counts, "within_mm": 4.0},
                    "refinement": {"network": {"name": "unet3d", "base": 4, "depth": 2},
                                   "patch": {"size": [8, 12, 12]}, "train": tiny}},
            # the paper's section 4.2 variant: one network over the whole scan, a PCA layer per bone; no refinement
            "whole": {"kind": "shape_fitting", "presegmentation": "unet2d", "threads": 1, "whole_volume": True,
                      "refinement": None, "crops_per_subject": 1,
                      "regression": {"cube_size": 16, "base_features": 4, "epochs": 2, "lr": 0.01, "batch_size": 2},
                      "landmarks": {"counts": counts, "within_mm": 4.0}},
        },
        "evaluation": {"methods": ["unet2d", "fit", "whole"], "collision_eps_mm": None,
                       "tables": {"metrics": ["dice", "hd95_mm"]}},
    }}}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fitting")
    manifest, split = _dataset(root)
    write_config(root, _config(manifest, split, {"femur": 12, "tibia": 5}))
    result = snakemake("--cores", "2", "tables", cwd=root)
    assert result.returncode == 0, result.stderr[-5000:]
    return root


def test_each_test_subject_is_predicted_on_its_grid_with_timed_steps_and_fitted_landmarks(run: Path) -> None:
    for sid in TEST:
        pred = read_volume(run / f"results/predictions/knee/sub-{sid}_method-fit_pred.nii.gz")
        assert pred.array.any()
        image = read_volume(run / f"results/preprocess/knee/sub-{sid}_image.nii.gz")
        assert pred.geometry_mismatches(image) == []
        assert set(np.unique(pred.array)) <= {0, *LABELS.values()}
        record = json.loads((run / f"results/predictions/knee/sub-{sid}_method-fit_pred.json")
                            .read_text(encoding="utf-8"))
        assert set(record["steps_seconds"]) == STEPS and record["seconds"] > 0
        fitted = read_table(run / f"results/predictions/knee/sub-{sid}_method-fit_landmarks.csv")
        assert fitted.groupby("structure").size().to_dict() == {"femur": 60, "tibia": 60}
        assert np.isfinite(fitted[["x", "y", "z"]].to_numpy()).all()


def test_the_fold_selects_the_declared_landmarks_near_cartilage(run: Path) -> None:
    selection = read_table(run / "results/models/knee/method-fit_fold-0_selection.tsv")
    assert selection.groupby("bone").size().to_dict() == {"femur": 12, "tibia": 5}
    assert selection.groupby("bone")["index"].nunique().to_dict() == {"femur": 12, "tibia": 5}


def test_the_tables_list_the_method_and_score_the_fitted_shapes(run: Path) -> None:
    dice = pd.read_csv(run / "results/tables/knee/metric-dice_table.csv")
    assert "fit" in dice.iloc[:, 0].astype(str).tolist() and "unet2d" in dice.iloc[:, 0].astype(str).tolist()
    errors = read_table(run / "results/tables/knee/landmarks.tsv")
    assert sorted(errors["subject"].unique()) == list(TEST) and set(errors["method"]) == {"fit", "whole"}
    assert (run / "results/models/knee/method-whole_fold-0_part-all_regression.pt").exists()
    assert not list((run / "results/models/knee").glob("method-whole_*refinement*"))
    # without refinement the steps stop at the pre-segmentation and the fitted shapes
    whole = json.loads((run / "results/predictions/knee/sub-k4_method-whole_pred.json").read_text(encoding="utf-8"))
    assert "refinement" not in whole["steps_seconds"]
    assert set(errors["structure"]) == {"femur", "tibia", "all"}
    mean = errors.loc[(errors["structure"] == "femur") & (errors["method"] == "fit"), "mean_mm"]
    # the error is the one a brute-force comparison of the two landmark files gives
    fitted = read_table(run / "results/predictions/knee/sub-k4_method-fit_landmarks.csv")
    warped = read_landmarks_csv(run / "results/landmarks/knee/sub-k4_structure-femur_landmarks.csv")
    femur = fitted[fitted["structure"] == "femur"].sort_values("index")[["x", "y", "z"]].to_numpy()
    brute = np.linalg.norm(femur - warped.sort_values("index")[["x", "y", "z"]].to_numpy(), axis=1).mean()
    assert mean.iloc[0] == pytest.approx(brute)
    markdown = (run / "results/tables/knee/landmarks.md").read_text(encoding="utf-8")
    assert "| fit | femur | 60 |" in markdown and "| whole | tibia | 60 |" in markdown
    assert "presegmentation" in markdown


def test_a_landmark_count_reruns_the_refinement_not_the_regression(run: Path, tmp_path: Path) -> None:
    manifest, split = run / "manifest.csv", run / "split.tsv"
    write_config(run, _config(manifest, split, {"femur": 10, "tibia": 5}))
    try:
        result = snakemake("--cores", "1", "tables", "-n", "--quiet", "rules", cwd=run)
        assert result.returncode == 0, result.stderr[-3000:]
        planned = result.stdout + result.stderr
        assert "train_refinement" in planned and "predict_shape_fitting" in planned
        assert "train_shape_regression" not in planned and "train_model" not in planned
    finally:
        write_config(run, _config(manifest, split, {"femur": 12, "tibia": 5}))


# ---- segmenting new scans with the fold models, and with their exported bundle in a second run ---------------
def _scans(root: Path) -> Path:
    """Two new knee scans without labels: a DICOM series (int16) and a NIfTI with oblique direction cosines."""
    from mskseg.io.volumes import write_dicom_series
    from mskseg.synthetic.regrid import oblique_copy

    first = generate_subject("knee", 0, seed=9, shape=(32, 56, 56), spacing=(3.2, 2.5, 2.5))
    write_dicom_series(first.image.with_array(np.asarray(first.image.array).astype(np.int16)), root / "new_dicom")
    second = generate_subject("knee", 1, seed=9, shape=(32, 56, 56), spacing=(3.0, 2.4, 2.4))
    image, _, _ = oblique_copy(second.image, second.mask, degrees=6.0, shift_mm=(5.0, -4.0, 9.0))
    write_volume(image, root / "new_oblique.nii.gz")
    manifest = root / "scans.csv"
    pd.DataFrame({"subject": ["n1", "n2"], "image": ["new_dicom", "new_oblique.nii.gz"]}).to_csv(manifest, index=False)
    return manifest


def _scan_datasets(scans: Path, model: dict) -> dict:
    return {"scans": {"modality": "mri", "labels": LABELS, "source": {"manifest": {"path": str(scans)}},
                      "segment": {"model": model, "meshes": "stl"}},
            "phantoms": {"modality": "mri", "labels": LABELS, "segment": {"model": model, "meshes": "none"},
                         "source": {"synthetic": {"kind": "knee", "n_subjects": 1, "seed": 8, "unlabelled": True,
                                                  "shape": [32, 56, 56], "spacing": [3.0, 2.4, 2.4],
                                                  "oblique_deg": 5, "origin_shift_mm": [10, -6, 4]}}}}


@pytest.fixture(scope="module")
def segmented(run: Path) -> Path:
    scans = _scans(run)
    config = _config(run / "manifest.csv", run / "split.tsv", {"femur": 12, "tibia": 5})
    config["datasets"] |= _scan_datasets(scans, {"dataset": "knee", "method": "fit"})
    write_config(run, config)
    result = snakemake("--cores", "2", "segment", "export_models", cwd=run)
    assert result.returncode == 0, result.stderr[-5000:]
    return run


def test_new_scans_come_back_on_their_own_grid_with_overlay_meshes_and_qc(segmented: Path) -> None:
    from scipy.spatial import cKDTree

    from mskseg.io.meshes import read_stl

    out = segmented / "results/segment/scans"
    for sid, source in (("n1", segmented / "new_dicom"), ("n2", segmented / "new_oblique.nii.gz")):
        scan, dseg = read_volume(source), read_volume(out / f"sub-{sid}_dseg.nii.gz")
        assert dseg.geometry_mismatches(scan) == [] and dseg.shape == scan.shape  # the scan's exact header
        values, counts = np.unique(dseg.array, return_counts=True)
        assert set(values) <= {0, *LABELS.values()} and len(values) > 1  # (the tiny test models are rough)
        assert (out / f"sub-{sid}_overlay.png").stat().st_size > 5000
        labels = read_table(out / f"sub-{sid}_dseg.tsv")
        assert labels["name"].tolist() == ["background", *LABELS] and labels["index"].tolist() == [0, 1, 2, 3, 4]
        value = int(values[1:][np.argmax(counts[1:])])  # the largest structure's mesh lies on it, in the world
        name = next(n for n, v in LABELS.items() if v == value)
        mesh, _ = read_stl(out / f"sub-{sid}_meshes" / f"sub-{sid}_{name}.stl")
        world = np.asarray(dseg.index_to_world(np.argwhere(np.asarray(dseg.array) == value)))
        distance, _ = cKDTree(world).query(mesh.vertices)  # every vertex beside a voxel of it, in world mm
        assert distance.max() <= np.linalg.norm(dseg.spacing)
    table = read_table(out / "qc.tsv")
    assert sorted(table["subject"]) == ["n1", "n2"] and {"flagged", "reasons", "femur.volume_z"} <= set(table)


def test_an_oblique_phantom_scores_in_its_own_space_as_on_the_preprocessed_grid(segmented: Path) -> None:
    record = json.loads((segmented / "results/segment/phantoms/sub-knee000_qc.json").read_text(encoding="utf-8"))
    for name in LABELS:
        assert record[f"{name}.dice"] >= record[f"{name}.dice_preprocessed"] - 0.02, name


def test_an_exported_bundle_segments_the_same_scans_alike_in_a_second_run(segmented: Path, tmp_path: Path) -> None:
    from mskseg.nn.bundle import load_bundle

    bundle = segmented / "results/bundles/knee/method-fit_bundle.tar.gz"
    loaded = load_bundle(bundle, extract_to=tmp_path / "extracted")
    assert loaded.kind == "shape_fitting" and loaded.labels == LABELS and list(loaded.folds) == ["0"]
    assert "qc_shape_model/femur" in loaded.folds["0"].files and "volumes" in loaded.folds["0"].files
    second = tmp_path / "second"
    second.mkdir()
    write_config(second, {"datasets": {"scans": _scan_datasets(segmented / "scans.csv",
                                                              {"bundle": str(bundle)})["scans"]}})
    result = snakemake("--cores", "2", "segment", cwd=second)
    assert result.returncode == 0, result.stderr[-5000:]
    for sid in ("n1", "n2"):
        first = read_volume(segmented / f"results/segment/scans/sub-{sid}_dseg.nii.gz")
        again = read_volume(second / f"results/segment/scans/sub-{sid}_dseg.nii.gz")
        assert np.array_equal(first.array, again.array) and again.geometry_mismatches(first) == []
    # a dataset whose labels differ from the bundle's is refused, naming the label
    wrong = _scan_datasets(segmented / "scans.csv", {"bundle": str(bundle)})["scans"]
    wrong["labels"] = {**LABELS, "tibia": 5}
    write_config(second, {"datasets": {"other": wrong}})
    result = snakemake("--cores", "1", "segment", cwd=second)
    log = "".join(p.read_text(encoding="utf-8") for p in (second / "logs/segment/other").glob("*.log"))
    assert result.returncode != 0 and "tibia" in log and "label" in log.lower()
