"""The shape-model stage through Snakemake on a small manifest dataset of knee phantoms.

Six subjects; one has a femur that is only a thin hollow shell (it passes QC, but no affine
+ diffeomorphic mapping fills a cavity), so its registration does not converge: it must be
recorded, named in the log, and left out of every fold's model while the run goes on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import ndimage

from mskseg.io import write_volume
from mskseg.io.landmarks import read_landmarks_csv, read_slicer_markups
from mskseg.shape import load_shape_model
from mskseg.synthetic import generate_subject
from mskseg.volume import Volume
from tests.workflow.wf import snakemake, write_config

pytestmark = pytest.mark.slow
LABELS = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
HOLLOW = "k5"


def _dataset(root: Path) -> Path:
    rows = []
    for i in range(6):
        s = generate_subject("knee", i, seed=3, shape=(32, 56, 56), spacing=(3.2, 2.5, 2.5))
        mask = np.asarray(s.mask.array).copy()
        sid = f"k{i}"
        if sid == HOLLOW:
            femur = mask == 1
            mask[ndimage.binary_erosion(femur, iterations=1)] = 0  # keep a shell one voxel thick
        write_volume(s.image, root / f"{sid}_img.nii.gz")
        write_volume(Volume(mask, s.mask.spacing, s.mask.origin, s.mask.direction), root / f"{sid}_seg.nii.gz")
        s.landmarks.to_csv(root / f"{sid}_truth.csv", index=False)
        rows.append((sid, f"{sid}_img.nii.gz", f"{sid}_seg.nii.gz"))
    pd.DataFrame(rows, columns=["subject", "image", "label"]).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shape")
    manifest = _dataset(root)
    config = {"datasets": {"knee": {
        "modality": "mri", "labels": LABELS, "bones": ["femur"],
        "source": {"manifest": {"path": str(manifest)}},
        "split": {"method": "kfold", "k": 3, "n_val_folds": 0, "seed": 1},
        "preprocess": {"crop": {"structures": ["femur", "tibia"], "margin_mm": 5}},
        "shape": {"n_landmarks": 80, "working_spacing_mm": 3.0, "selection_spacing_mm": 4.0,
                  "demons": {"shrink_factors": [2, 1], "iterations": [30, 20]},
                  "quality": {"n_samples": 20, "max_modes": 3}},
    }}}
    write_config(root, config)
    result = snakemake("--cores", "2", "shape", cwd=root)
    assert result.returncode == 0, result.stderr[-5000:]
    return root


def test_reference_is_chosen_and_landmarks_warped_to_every_subject(run: Path) -> None:
    ref = pd.read_csv(run / "results/registration/knee/bone-femur_reference.tsv", sep="\t", dtype={"subject": str})
    assert ref["selected"].sum() == 1 and sorted(ref["subject"]) == [f"k{i}" for i in range(6)]
    assert ref.loc[ref["selected"], "subject"].item() != HOLLOW
    for i in range(6):
        lm = read_landmarks_csv(run / f"results/landmarks/knee/sub-k{i}_structure-femur_landmarks.csv")
        assert len(lm) == 80 and lm["index"].tolist() == list(range(80))
        mk = read_slicer_markups(run / f"results/landmarks/knee/sub-k{i}_structure-femur_landmarks.mrk.json")
        assert np.allclose(mk[["x", "y", "z"]].to_numpy(), lm[["x", "y", "z"]].to_numpy())


def test_non_converging_registration_is_recorded_and_excluded(run: Path) -> None:
    record = json.loads((run / f"results/registration/knee/sub-{HOLLOW}_structure-femur_registration.json")
                        .read_text(encoding="utf-8"))
    assert record["converged"] is False
    assert "Dice after warping" in record["reason"] or "folds" in record["reason"]
    table = pd.read_csv(run / "results/landmarks/knee/bone-femur_correspondence.tsv", sep="\t",
                        dtype={"subject": str})
    assert table.set_index("subject")["converged"].astype(str).to_dict()[HOLLOW] == "False"
    assert (table[table["subject"] != HOLLOW]["converged"].astype(str) == "True").all()
    log = (run / "logs/landmarks/knee/bone-femur_correspondence.log").read_text(encoding="utf-8")
    assert f"EXCLUDED {HOLLOW} femur" in log
    good = table[table["subject"] != HOLLOW]
    assert (good["surface_mean_mm"] < 1.0).all()  # within a working voxel of their own surface


def test_each_fold_model_holds_only_its_training_subjects(run: Path) -> None:
    splits = pd.read_csv(run / "results/splits/knee/splits.tsv", sep="\t", dtype={"subject": str})
    for fold in sorted(splits["split"].unique()):
        model = load_shape_model(run / f"results/shape/knee/bone-femur_fold-{fold}_model.npz")
        train = splits[(splits["split"] == fold) & (splits["role"] == "train")]["subject"]
        expected = sorted(f"{s}:femur" for s in train if s != HOLLOW)
        assert sorted(model.subjects) == expected
        assert model.n_points == 80 and model.metadata["fold"] == str(fold)
        if HOLLOW in set(train):
            assert "did not converge" in model.metadata["left_out"][f"{HOLLOW}:femur"]
        quality = pd.read_csv(run / f"results/shape/knee/bone-femur_fold-{fold}_quality.tsv", sep="\t")
        assert quality["compactness"].is_monotonic_increasing
        for name in ("quality.png", "quality.svg", "modes.png"):
            assert (run / f"results/shape/knee/bone-femur_fold-{fold}_{name}").stat().st_size > 1000


def test_changing_the_landmark_count_reruns_landmarks_not_registrations(run: Path) -> None:
    config_path = run / "config.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["datasets"]["knee"]["shape"]["n_landmarks"] = 60
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    dry = snakemake("-n", "--cores", "2", "shape", cwd=run)
    text = dry.stdout + dry.stderr
    assert dry.returncode == 0, text[-3000:]
    assert "reference_landmarks" in text and "warp_landmarks" in text
    assert "register_structure" not in text and "select_reference" not in text
