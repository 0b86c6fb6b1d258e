"""Fault injection: a manifest holding every known kind of bad subject beside good ones runs through `qc`,
`preprocess` and `shape`. Each fault is recorded with its reason, the good subjects are finished, and no
input file changes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from mskseg.io import write_volume
from mskseg.io.tables import read_table
from mskseg.synthetic import generate_subject
from mskseg.volume import Volume
from tests.workflow.wf import snakemake, write_config

pytestmark = pytest.mark.slow
LABELS = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
GOOD = [f"good{i}" for i in range(6)]
#: subject -> (the check that must fail, words its detail must hold)
FAULTS = {
    "truncgz": ("image_read", "truncated"),          # a .nii.gz cut to half its bytes (SimpleITK zero-fills it)
    "truncnii": ("image_read", "truncated"),         # the same, uncompressed
    "truncmha": ("image_read", "truncated"),         # a .mha cut short (SimpleITK blames errno)
    "hugelabel": ("label_values", "2000000000"),     # one voxel of 2e9: no 16 GB count array
    "shifted": ("geometry", "origin"),               # the mask's origin moved 5 mm
    "unknown": ("label_values", "undeclared label value(s) 9"),
    "empty": ("structures_present", "tibia"),        # the tibia missing from the mask
    "othershape": ("geometry", "size"),              # mask and image of different sizes
    "nanmha": ("image_intensity", "NaN"),            # NaN voxels in a MetaImage
    "missing": ("image_read", "does not exist"),
    "flat": ("image_read", "2D"),                    # a 2D image
}


def _phantom(i: int) -> tuple[Volume, Volume]:
    s = generate_subject("knee", i, seed=3, shape=(32, 56, 56), spacing=(3.2, 2.5, 2.5))
    return s.image, s.mask


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _dataset(root: Path) -> Path:
    rows = []
    for i, sid in enumerate(GOOD):
        image, mask = _phantom(i)
        write_volume(image, root / f"{sid}_img.nii.gz")
        write_volume(mask, root / f"{sid}_seg.nii.gz")
        rows.append((sid, f"{sid}_img.nii.gz", f"{sid}_seg.nii.gz"))
    image, mask = _phantom(7)
    noisy = image.with_array(image.array + np.random.default_rng(0).normal(0, 5, image.shape).astype(np.float32))
    files = {}
    for sid, ending in (("truncgz", "nii.gz"), ("truncnii", "nii"), ("truncmha", "mha")):
        write_volume(noisy, root / f"{sid}_img.{ending}", compress=ending == "nii.gz")
        _cut(root / f"{sid}_img.{ending}")
        files[sid] = f"{sid}_img.{ending}"
    huge = mask.array.astype(np.int32)
    huge[0, 0, 0] = 2_000_000_000
    masks = {
        "hugelabel": mask.with_array(huge),
        "shifted": Volume(mask.array, mask.spacing, tuple(np.add(mask.origin, (5.0, 0.0, 0.0))), mask.direction),
        "unknown": mask.with_array(np.where(mask.array == 4, 9, mask.array).astype(np.uint8)),
        "empty": mask.with_array(np.where(mask.array == 3, 0, mask.array).astype(np.uint8)),
        "othershape": Volume(mask.array[:-2], mask.spacing, mask.origin, mask.direction),
    }
    for sid in FAULTS:
        if sid not in files:
            files[sid] = f"{sid}_img.nii.gz"
        if sid in masks:
            write_volume(image, root / files[sid])
        write_volume(masks.get(sid, mask), root / f"{sid}_seg.nii.gz")
    nan = image.array.copy()
    nan[3:5, 10:12, 10:12] = np.nan
    files["nanmha"] = "nanmha_img.mha"
    write_volume(image.with_array(nan), root / files["nanmha"])
    files["missing"] = "missing_img.nii.gz"
    (root / files["missing"]).unlink(missing_ok=True)
    files["flat"] = "flat_img.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(image.array[10]), str(root / files["flat"]))
    rows += [(sid, files[sid], f"{sid}_seg.nii.gz") for sid in FAULTS]
    pd.DataFrame(rows, columns=["subject", "image", "label"]).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _config(manifest: Path) -> dict:
    return {"datasets": {"knee": {
        "modality": "mri", "labels": LABELS, "bones": ["femur"], "source": {"manifest": {"path": str(manifest)}},
        "split": {"method": "kfold", "k": 3, "n_val_folds": 0, "seed": 1},
        "preprocess": {"crop": {"structures": ["femur", "tibia"], "margin_mm": 5}},
        "shape": {"n_landmarks": 60, "working_spacing_mm": 3.0, "selection_spacing_mm": 4.0,
                  "demons": {"shrink_factors": [2, 1], "iterations": [20, 10]},
                  "quality": {"n_samples": 10, "max_modes": 2}},
    }}}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], object]:
    root = tmp_path_factory.mktemp("faults")
    data = root / "data"
    data.mkdir()
    manifest = _dataset(data)
    before = _checksums(data)
    write_config(root, _config(manifest))
    result = snakemake("--cores", "2", "qc", "preprocess", "shape", cwd=root)
    return root, before, result


def test_the_run_goes_on_and_no_input_changes(run) -> None:
    root, before, result = run
    assert result.returncode == 0, result.stderr[-5000:]
    assert _checksums(root / "data") == before


def test_every_fault_is_recorded_with_its_reason(run) -> None:
    root, _, _ = run
    subjects = read_table(root / "results/qc/knee/subjects.tsv").set_index("subject")
    table = read_table(root / "results/qc/knee/qc_table.tsv")
    assert subjects.loc[GOOD, "qc_passed"].all()
    for sid, (check, words) in FAULTS.items():
        assert not subjects.loc[sid, "qc_passed"], sid
        row = table[(table["subject"] == sid) & (table["check"] == check)]
        assert row["status"].tolist() == ["fail"], (sid, table[table["subject"] == sid].to_string())
        assert words in row["detail"].item(), (sid, row["detail"].item())
    details = " ".join(table.loc[table["status"] == "fail", "detail"])
    assert "No such file or directory" not in details.replace("missing_img.nii.gz: file does not exist", "")
    log = (root / "logs/qc/knee/summary.log").read_text(encoding="utf-8")
    assert all(f"EXCLUDED {sid}:" in log for sid in FAULTS)


def test_the_good_subjects_are_finished_and_the_bad_ones_go_no_further(run) -> None:
    root, _, _ = run
    for sid in GOOD:
        assert (root / f"results/preprocess/knee/sub-{sid}_image.nii.gz").is_file()
        assert (root / f"results/landmarks/knee/sub-{sid}_structure-femur_landmarks.csv").is_file()
    for sid in FAULTS:  # a QC record, and nothing after it
        assert [p.parts[-3] for p in (root / "results").rglob(f"sub-{sid}_*")] == ["qc"], sid
    splits = read_table(root / "results/splits/knee/splits.tsv")
    assert set(splits["subject"]) == set(GOOD)
    assert len(list((root / "results/shape/knee").glob("bone-femur_fold-*_model.npz"))) == 3


def test_an_id_with_shell_characters_stops_the_run_before_any_job(tmp_path: Path) -> None:
    image, mask = _phantom(0)
    write_volume(image, tmp_path / "a_img.nii.gz")
    write_volume(mask, tmp_path / "a_seg.nii.gz")
    pd.DataFrame([("ok1", "a_img.nii.gz", "a_seg.nii.gz"), ("x;rm -rf", "a_img.nii.gz", "a_seg.nii.gz")],
                 columns=["subject", "image", "label"]).to_csv(tmp_path / "manifest.csv", index=False)
    write_config(tmp_path, _config(tmp_path / "manifest.csv"))
    result = snakemake("-n", "--cores", "1", "qc", cwd=tmp_path)
    assert result.returncode != 0
    assert "row 2: subject id 'x;rm -rf' holds a space" in result.stdout + result.stderr
