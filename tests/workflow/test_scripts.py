"""Each rule script's main(), called directly as the rule would call it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mskseg.io import read_volume, write_volume
from mskseg.io.tables import read_table
from mskseg.preprocess import PreprocessSettings
from mskseg.qc import QCSettings
from tests.conftest import sphere_pair

LABELS = {"a": 1, "b": 2}


def test_synthesize_subject_writes_every_output(tmp_path: Path) -> None:
    from synthesize_subject import main

    outs = {k: tmp_path / f"s_{k}.{e}" for k, e in (("image", "nii.gz"), ("mask", "nii.gz"),
                                                      ("poor_mask", "nii.gz"), ("landmarks", "csv"),
                                                      ("params", "json"))}
    main(spec={"kind": "knee", "seed": 3, "shape": [40, 70, 70], "spacing": [2.5, 2.0, 2.0], "n_landmarks": 20},
         index=1, log=tmp_path / "log.txt", **outs)
    image, mask = read_volume(outs["image"]), read_volume(outs["mask"])
    assert image.shape == (40, 70, 70) and mask.geometry_mismatches(image) == []
    landmarks = pd.read_csv(outs["landmarks"])
    assert len(landmarks) == 40 and set(landmarks["structure"]) == {"femur", "tibia"}
    assert json.loads(outs["params"].read_text())["index"] == 1
    assert "generating knee subject 1" in (tmp_path / "log.txt").read_text()


def test_qc_and_summary_and_splits_and_preprocess_scripts(tmp_path: Path) -> None:
    from make_splits import main as splits_main
    from preprocess_subject import main as preprocess_main
    from qc_subject import QCFailure
    from qc_subject import main as qc_main
    from qc_summary import main as summary_main

    image, mask = sphere_pair()
    rows = []
    for n in range(4):
        write_volume(image, tmp_path / f"i{n}.nii.gz")
        write_volume(mask if n else mask.with_array(np.zeros_like(mask.array)), tmp_path / f"m{n}.nii.gz")
        rows.append({"subject": f"s{n}", "patient": f"p{n}", "image": str(tmp_path / f"i{n}.nii.gz"),
                     "label": str(tmp_path / f"m{n}.nii.gz"), "label_poor": ""})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.tsv", sep="\t", index=False)
    settings = QCSettings(labels=LABELS)
    for n, row in enumerate(rows):
        qc_main(subject=row["subject"], image=row["image"], label=row["label"], settings=settings, fatal=False,
                records=tmp_path / f"qc{n}.tsv", log=tmp_path / f"qc{n}.log")
    with pytest.raises(QCFailure, match="subject s0 failed quality control"):
        qc_main(subject="s0", image=rows[0]["image"], label=rows[0]["label"], settings=settings, fatal=True,
                records=tmp_path / "fatal.tsv")
    assert not (tmp_path / "fatal.tsv").exists()

    summary_main(records=[tmp_path / f"qc{n}.tsv" for n in range(4)], manifest=tmp_path / "manifest.tsv",
                 table=tmp_path / "qc_table.tsv", subjects=tmp_path / "subjects.tsv", log=tmp_path / "sum.log")
    subjects = read_table(tmp_path / "subjects.tsv")
    assert subjects["qc_passed"].tolist() == [False, True, True, True]
    assert "EXCLUDED s0: structures_present: empty structure(s): a (1), b (2)" in (tmp_path / "sum.log").read_text()

    splits_main(subjects=tmp_path / "subjects.tsv", split={"method": "kfold", "k": 3, "n_val_folds": 1, "seed": 1},
                fixed_base=tmp_path, splits=tmp_path / "splits.tsv", log=tmp_path / "splits.log")
    splits = read_table(tmp_path / "splits.tsv")
    assert sorted(splits["subject"].unique()) == ["s1", "s2", "s3"]
    assert splits.groupby("split")["role"].apply(sorted).tolist() == [["test", "train", "val"]] * 3

    preprocess_main(image_in=Path(rows[1]["image"]), label_in=Path(rows[1]["label"]),
                    settings=PreprocessSettings(spacing=(1.0, 1.0, 1.0), modality="mri", crop_labels=(1,),
                                                crop_margin_mm=1.0),
                    mask_geometry="check", image=tmp_path / "p_image.nii.gz", mask=tmp_path / "p_mask.nii.gz",
                    record=tmp_path / "p.json", log=tmp_path / "p.log")
    out = read_volume(tmp_path / "p_image.nii.gz")
    assert out.spacing == (1.0, 1.0, 1.0) and read_volume(tmp_path / "p_mask.nii.gz").geometry_mismatches(out) == []
    assert json.loads((tmp_path / "p.json").read_text())["sources"]["image"] == rows[1]["image"]


def test_dataset_manifest_script_writes_the_resolved_manifest(tmp_path: Path) -> None:
    from dataset_manifest import main

    dataset = {"modality": "ct", "labels": {"femur_left": 1}, "source": {"synthetic": {"kind": "hip", "n_subjects": 3,
                                                                                        "patients": 2}}}
    main(name="hip", dataset=dataset, manifest=tmp_path / "m.tsv", log=tmp_path / "m.log")
    frame = read_table(tmp_path / "m.tsv")
    assert frame["subject"].tolist() == ["hip000", "hip001", "hip002"]
    assert frame["patient"].tolist() == ["hipp000", "hipp000", "hipp001"]


def test_cartilage_design_table_writes_the_tables_and_both_figures(tmp_path: Path) -> None:
    from cartilage_design_table import main

    from mskseg.io.tables import write_table

    metrics, fovs = [], []
    for method, base in (("a", 0.9), ("b", 0.7), ("a2", 0.6), ("b2", 0.5)):
        rows = [{"method": method, "subject": f"s{i}", "structure": "fc", "dice": base + 0.01 * i,
                 "voe": 1 - base - 0.01 * i} for i in range(4)]
        write_table(pd.DataFrame(rows), tmp_path / f"{method}_metrics.csv")
        metrics.append(tmp_path / f"{method}_metrics.csv")
        if method in ("a", "b"):
            write_table(pd.DataFrame([{**r, "position_pct": p} for r in rows for p in (0.0, 50.0, 100.0)]),
                        tmp_path / f"{method}_fov.csv")
            fovs.append(tmp_path / f"{method}_fov.csv")
    study = {"dataset": "k", "structure": "fc", "experiments": [["arch", [["A", "a"], ["B", "b"]]]],
             "sizes": [["A", [[2.0, 1, "a2"], [1.0, 1, "a"]]], ["B", [[2.0, 1, "b2"], [1.0, 1, "b"]]]],
             "patients": {"a": 8, "b": 8, "a2": 2, "b2": 2}, "metrics": ["dice", "voe"], "alpha": 0.05, "bins": 4,
             "decimals": 3}
    out = {k: tmp_path / f"out_{k}.{e}" for k, e in (("table", "md"), ("page", "html"), ("csv", "csv"),
                                                     ("sizes", "csv"), ("fov", "png"), ("powerlaw", "png"))}
    main(study=study, metrics=metrics, fovs=fovs, log=tmp_path / "log.txt", **out)
    text = out["table"].read_text()
    assert "## Arch" in text and "| A | a | **0.915 (0.013)** |" in text and "| B | DSC |" in text
    assert set(read_table(out["csv"])["label"]) == {"A", "B"}
    assert set(read_table(out["sizes"])["patients"]) == {2, 8}
    assert out["fov"].stat().st_size > 1000 and out["powerlaw"].stat().st_size > 1000
    assert "<table" in out["page"].read_text()
