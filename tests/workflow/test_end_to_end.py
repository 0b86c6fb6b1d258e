"""The whole DAG on tiny data in tmp_path: two synthetic datasets, an OAI-ZIB layout folder, and a
manifest in every format with broken subjects that QC must record and exclude while the run goes on."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mskseg.io import read_volume, write_volume
from mskseg.io.volumes import write_dicom_series
from mskseg.volume import Volume
from tests.conftest import sphere_pair
from tests.workflow.wf import REPO, snakemake, write_config

sys.path.insert(0, str(REPO / "tools"))
from headless_chromium import browse_report

pytestmark = pytest.mark.slow
RULES = {"synthesize_subject", "dataset_manifest", "qc_subject", "qc_summary", "make_splits", "preprocess_subject",
         "perturb_prediction", "evaluate_subject", "batch_metrics", "collect_metrics", "metric_table", "fov_curve",
         "table_summary", "training_size_study", "weight_map", "preprocess_poor_mask", "pretrain_model", "train_model",
         "fit_fusion", "predict_subject", "preprocess_batch", "preprocess_table", "run_provenance", "qc_page",
         "overlay_gallery", "speed_accuracy", "all"}
TINY_TRAIN = {"epochs": 1, "batch_size": 4, "lr": 0.01, "steps_per_epoch": 2, "seed": 1}
LABELS4 = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}


def _oai_folder(root: Path) -> None:
    """Three good OAI-ZIB subjects (mask headers wrong, as shipped) and one whose mask has another shape."""
    for n in range(4):
        image, mask = sphere_pair(shape=(20 + n, 24, 16), labels=(1, 2, 3, 4))
        image = image.with_array(image.array + n)
        bad_header = Volume(mask.array if n < 3 else mask.array[:-1], mask.spacing, (0.0, 0.0, 0.0), np.eye(3))
        write_volume(image, root / f"900{n}.mhd")
        write_volume(bad_header, root / f"900{n}.segmentation_masks.mhd")


def _broken_manifest(root: Path) -> Path:
    """Good subjects in four formats and one subject per QC failure."""
    image, mask = sphere_pair(labels=(1, 2))
    rows = []
    for sid, fmt in (("good-nii", "nii.gz"), ("good.mha", "mha"), ("good_nrrd", "nrrd")):
        write_volume(image, root / f"{sid}_img.{fmt}")
        write_volume(mask, root / f"{sid}_seg.{fmt}")
        rows.append((sid, f"{sid}_img.{fmt}", f"{sid}_seg.{fmt}", f"P-{sid}"))
    int_image = image.with_array(image.array.astype(np.int16))
    write_dicom_series(int_image, root / "dicom_series")
    write_volume(mask, root / "good_dicom_seg.nii.gz")
    rows.append(("good-dicom", "dicom_series", "good_dicom_seg.nii.gz", "P-dicom"))
    (root / "corrupt_img.nii.gz").write_bytes(b"not a volume")
    write_volume(mask, root / "corrupt_seg.nii.gz")
    rows.append(("corrupt", "corrupt_img.nii.gz", "corrupt_seg.nii.gz", "P-corrupt"))
    write_volume(image, root / "shifted_img.nii.gz")
    write_volume(Volume(mask.array, mask.spacing, tuple(np.add(mask.origin, (2.0, 0, 0))), mask.direction),
                 root / "shifted_seg.nii.gz")
    rows.append(("shifted", "shifted_img.nii.gz", "shifted_seg.nii.gz", "P-shifted"))
    unknown = mask.array.copy()
    unknown[0, 0, :4] = 9
    write_volume(image, root / "unknown_img.nii.gz")
    write_volume(mask.with_array(unknown), root / "unknown_seg.nii.gz")
    rows.append(("unknown", "unknown_img.nii.gz", "unknown_seg.nii.gz", "P-unknown"))
    write_volume(image, root / "empty_img.nii.gz")
    write_volume(mask.with_array(np.where(mask.array == 1, 0, mask.array).astype(np.uint8)), root / "empty_seg.nii.gz")
    rows.append(("empty", "empty_img.nii.gz", "empty_seg.nii.gz", "P-empty"))
    rows.append(("missing", "missing_img.nii.gz", "missing_seg.nii.gz", "P-missing"))
    frame = pd.DataFrame(rows, columns=["subject", "image", "label", "patient"])
    frame.to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def _config(tmp_path: Path, fatal: bool = False) -> dict:
    (tmp_path / "oai").mkdir(exist_ok=True)
    (tmp_path / "broken").mkdir(exist_ok=True)
    _oai_folder(tmp_path / "oai")
    manifest = _broken_manifest(tmp_path / "broken")
    spheres = {"modality": "mri", "preprocess": {"spacing": [1.0, 1.0, 1.0],
                                                  "crop": {"structures": ["a"], "margin_mm": 2.0}},
               "split": {"method": "kfold", "k": 3, "n_val_folds": 1}}
    return {
        "qc": {"fatal": fatal},
        "batch_subjects": 2,  # several batches per dataset: records are gathered per batch, then per dataset
        "datasets": {
            "knee": {"modality": "mri", "labels": LABELS4, "bones": ["femur", "tibia"],
                     "source": {"synthetic": {"kind": "knee", "n_subjects": 3, "seed": 5, "patients": 1}},
                     "split": {"method": "kfold", "k": 3, "n_val_folds": 1},
                     "preprocess": {"crop": {"structures": ["femur", "tibia"], "margin_mm": 5}},
                     "shape": {"enabled": False},  # 3 subjects: too few per fold (test_shape_stage.py)
                     "methods": {"exact": {"kind": "perturbed", "displacement_mm": 0.0, "n_blobs": 0},
                                 # three planes, fusion weights fitted on the validation subject
                                 "tp": {"kind": "trained", "view": "three_plane", "threads": 1,
                                        "network": {"name": "unet2d", "base": 4, "depth": 2}, "train": TINY_TRAIN},
                                 "rough": {"kind": "perturbed", "displacement_mm": 1.5, "n_blobs": 2, "seed": 3}},
                     "evaluation": {"collision_eps_mm": None,
                                    "tables": {"metrics": ["dice", "hd95_mm", "mean_iou"]},
                                    "training_size": {"rough": 2, "exact": 6}, "training_size_metrics": ["dice"]}},
            "hip": {"modality": "ct", "labels": {"femur_left": 1, "femur_right": 2, "hip_left": 3, "hip_right": 4,
                                                 "sacrum": 5},
                    "source": {"synthetic": {"kind": "hip", "n_subjects": 3, "seed": 5, "poor_labels": True}},
                    "symmetric_pairs": [["femur_left", "femur_right"], ["hip_left", "hip_right"]],
                    "split": {"method": "loo", "n_val": 1}, "shape": {"enabled": False},
                    # pre-trained on the poor labels, fine-tuned in one round with the eroded distance weight map
                    "weight_maps": {"eroded": {"w0": 20, "sigma_mm": 12, "erode_radius_mm": 3}},
                    "methods": {"tl": {"kind": "trained", "view": "axial", "loss": "weighted_ce",
                                       "weight_map": "eroded", "threads": 1,
                                       "network": {"name": "unet2d", "base": 4, "depth": 2}, "train": TINY_TRAIN,
                                       "pretrain": {"train": {**TINY_TRAIN, "monitor": "train_loss"}},
                                       "interactive": {"rounds": [1], "collision_eps_mm": 6.0}}},
                    "evaluation": {"tables": {"metrics": ["dice"]}}},
            "oai": {**spheres, "labels": LABELS4, "source": {"layout": {"name": "oai-zib", "path": "oai"}},
                    "preprocess": {"spacing": [1.0, 1.0, 1.0], "crop": {"structures": ["femur"], "margin_mm": 2.0}},
                    # predictions already on disk (here: the preprocessed masks themselves)
                    "methods": {"ondisk": {"kind": "files",
                                           "path": "results/preprocess/oai/sub-{subject}_mask.nii.gz"}}},
            "broken": {**spheres, "labels": {"a": 1, "b": 2}, "source": {"manifest": {"path": str(manifest)}},
                       "split": {"method": "kfold", "k": 2, "n_val_folds": 0}},
        },
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    write_config(root, _config(root))
    result = snakemake("--cores", "2", "--resources", "gpu=1", cwd=root)
    assert result.returncode == 0, result.stderr[-5000:]
    return root


def _table(root: Path, *parts: str) -> pd.DataFrame:
    return pd.read_csv(root.joinpath("results", *parts), sep="\t", dtype={"subject": str}, keep_default_na=False)


def test_broken_subjects_are_recorded_and_excluded_while_the_run_goes_on(run: Path) -> None:
    qc = _table(run, "qc", "broken", "qc_table.tsv")
    fails = qc[qc["status"] == "fail"].groupby("subject")["check"].apply(set).to_dict()
    assert fails == {"corrupt": {"image_read"}, "shifted": {"geometry"}, "unknown": {"label_values"},
                     "empty": {"structures_present"}, "missing": {"image_read"}}
    subjects = _table(run, "qc", "broken", "subjects.tsv").set_index("subject")
    passed = sorted(subjects.index[subjects["qc_passed"].astype(str) == "True"])
    assert passed == ["good-dicom", "good-nii", "good.mha", "good_nrrd"]
    assert "origin" in subjects.loc["shifted", "qc_failures"]
    made = sorted(p.name[len("sub-"):-len("_image.nii.gz")]
                  for p in (run / "results/preprocess/broken").glob("*_image.nii.gz"))
    assert made == ["good-dicom", "good-nii", "good.mha", "good_nrrd"]
    splits = _table(run, "splits", "broken", "splits.tsv")
    assert sorted(splits["subject"].unique()) == passed
    log = (run / "logs/qc/broken/summary.log").read_text()
    for sid in ("corrupt", "shifted", "unknown", "empty", "missing"):
        assert f"EXCLUDED {sid}:" in log


def test_oai_zib_masks_are_reheadered_and_a_shape_mismatch_excluded(run: Path) -> None:
    subjects = _table(run, "qc", "oai", "subjects.tsv").set_index("subject")
    assert subjects["qc_passed"].astype(str).to_dict() == {"9000": "True", "9001": "True", "9002": "True",
                                                            "9003": "False"}
    assert (subjects.loc[["9000", "9001", "9002"], "qc_fixes"] == "geometry").all()
    image = read_volume(run / "results/preprocess/oai/sub-9000_image.nii.gz")
    mask = read_volume(run / "results/preprocess/oai/sub-9000_mask.nii.gz")
    assert mask.geometry_mismatches(image) == [] and image.spacing == (1.0, 1.0, 1.0)
    record = json.loads((run / "results/preprocess/oai/sub-9000_preprocess.json").read_text())
    assert record["mask_reheadered"] and record["orientation"]["after"] == "LPS"


def test_synthetic_datasets_are_generated_checked_split_and_preprocessed(run: Path) -> None:
    for dataset, n_labels in (("knee", 4), ("hip", 5)):
        subjects = _table(run, "qc", dataset, "subjects.tsv")
        assert subjects["qc_passed"].astype(str).tolist() == ["True"] * 3
        for sid in subjects["subject"]:
            image = read_volume(run / f"results/preprocess/{dataset}/sub-{sid}_image.nii.gz")
            mask = read_volume(run / f"results/preprocess/{dataset}/sub-{sid}_mask.nii.gz")
            assert mask.geometry_mismatches(image) == []
            assert set(np.unique(mask.array)) == set(range(n_labels + 1))
            assert abs(float(image.array.mean())) < 1.5  # normalised intensities
            assert (run / f"results/synthetic/{dataset}/sub-{sid}_landmarks.csv").is_file()
    hip = _table(run, "splits", "hip", "splits.tsv")
    assert hip["split"].nunique() == 3  # leave-one-out: one split per patient
    manifest = _table(run, "data", "hip", "manifest.tsv")
    assert manifest["label_poor"].str.endswith("poormask.nii.gz").all()


def test_evaluation_scores_every_test_subject_and_writes_tables_and_plots(run: Path) -> None:
    knee = pd.read_csv(run / "results/evaluation/knee/method-exact_metrics.csv", dtype={"subject": str})
    assert sorted(knee["subject"].unique()) == ["knee000", "knee001", "knee002"]
    assert knee["fold"].notna().all()
    structures = knee[knee["structure"] != "all"]
    assert (structures["dice"] == 1.0).all() and (structures["hd_mm"] == 0.0).all()  # displacement 0, no blobs
    rough = pd.read_csv(run / "results/evaluation/knee/method-rough_metrics.csv")
    assert (rough.loc[rough["structure"] == "femur", "dice"] < 1.0).all()
    assert rough["gap_dice"].notna().any() and "collisions" not in rough  # collision_eps_mm: null
    table = (run / "results/tables/knee/metric-dice_table.md").read_text(encoding="utf-8")
    assert "| exact |" in table and "| rough |" in table and "femoral_cartilage" in table
    assert "\\pm" in (run / "results/tables/knee/metric-dice_table.tex").read_text(encoding="utf-8")
    stats = pd.read_csv(run / "results/tables/knee/metric-dice_stats.csv")
    assert {"kruskal", "dunn", "wilcoxon"} <= set(stats["test"])
    assert (run / "results/tables/knee/metric-mean_iou_table.md").is_file()
    fits = pd.read_csv(run / "results/tables/knee/study-trainingsize_metric-dice_powerlaw.csv")
    assert set(fits["structure"]) >= {"femur", "tibia"} and fits["b"].notna().all()
    for png in ("metric-dice_boxplot.png", "fov.png", "study-trainingsize_metric-dice_powerlaw.png"):
        assert (run / "results/plots/knee" / png).stat().st_size > 1000
    ondisk = pd.read_csv(run / "results/evaluation/oai/method-ondisk_metrics.csv", dtype={"subject": str})
    assert sorted(ondisk["subject"].unique()) == ["9000", "9001", "9002"]
    assert (ondisk.loc[ondisk["structure"] != "all", "dice"] == 1.0).all()


def test_trained_methods_train_per_fold_and_predict_every_test_subject(run: Path) -> None:
    knee = pd.read_csv(run / "results/evaluation/knee/method-tp_metrics.csv", dtype={"subject": str})
    assert sorted(knee["subject"].unique()) == ["knee000", "knee001", "knee002"]
    models = run / "results/models/knee"
    for fold in ("0", "1", "2"):
        weights = json.loads((models / f"method-tp_fold-{fold}_fusion.json").read_text(encoding="utf-8"))["views"]
        assert set(weights) == {"axial", "coronal", "sagittal"} and abs(sum(weights.values()) - 1) < 1e-9
        for view in weights:
            history = pd.read_csv(models / f"method-tp_fold-{fold}_view-{view}_history.csv")
            assert list(history["epoch"]) == [1] and history["val_dice"].notna().all()
            assert (models / f"method-tp_fold-{fold}_view-{view}_curve.png").stat().st_size > 1000
    for sid in ("knee000", "knee001", "knee002"):
        pred = read_volume(run / f"results/predictions/knee/sub-{sid}_method-tp_pred.nii.gz")
        image = read_volume(run / f"results/preprocess/knee/sub-{sid}_image.nii.gz")
        assert pred.geometry_mismatches(image) == []
    hip = pd.read_csv(run / "results/evaluation/hip/method-tl_metrics.csv", dtype={"subject": str})
    assert hip["subject"].nunique() == 3
    hip_models = run / "results/models/hip"
    assert len(list(hip_models.glob("method-tl_fold-*_view-axial_pretrained.pt"))) == 3
    rounds = pd.read_csv(next(hip_models.glob("method-tl_fold-*_view-axial_rounds.csv")))
    assert list(rounds["round"]) == [1] and rounds["collisions"].notna().all()  # |E| of the validation subject
    assert len(list((run / "results/weightmaps/hip").glob("*_wmap-eroded_weight.nii.gz"))) == 3
    assert len(list((run / "results/preprocess/hip").glob("*_poormask.nii.gz"))) == 3


def test_a_changed_evaluation_setting_reruns_only_evaluation_rules(run: Path, tmp_path: Path) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["datasets"]["knee"]["evaluation"]["hd_percentile"] = 90
    config["datasets"]["knee"]["evaluation"]["tables"]["decimals"] = 2
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    dry = snakemake("-n", "--cores", "2", "--configfile", str(path), cwd=run)
    text = dry.stdout + dry.stderr
    assert dry.returncode == 0, text[-3000:]
    planned = {line.split()[0] for line in text.splitlines()
               if line and line.split()[0] in RULES and len(line.split()) == 2 and line.split()[1].isdigit()}
    assert planned and planned <= {"evaluate_subject", "batch_metrics", "collect_metrics", "metric_table", "fov_curve",
                                   "table_summary", "training_size_study", "all",
                                   # the report's pages built on the metrics, and the config it states
                                   "overlay_gallery", "speed_accuracy", "run_provenance"}, text[-3000:]
    assert "evaluate_subject" in planned and "perturb_prediction" not in text


def test_the_report_opens_in_chromium_with_every_section_and_an_overlay(run: Path, tmp_path: Path) -> None:
    """`snakemake --report` of the run, opened in headless Chromium (installed when missing, as on CI): the menu
    lists every section the run made, and clicking Overlays, a dataset and its first case shows the picture."""
    result = snakemake("--report", str(tmp_path / "report.html"), cwd=run)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    dom = browse_report(tmp_path / "report.html", ["Overlays", "knee"], tmp_path)
    menu = re.search(r'<pre id="probe-menu">(.*?)</pre>', dom, re.S).group(1)
    for section in ("About this run", "Quality control", "Training", "Evaluation", "Overlays", "Speed and accuracy"):
        assert section in menu, menu
    assert "Shape models" not in menu and "Studies" not in menu  # this run makes neither
    assert "01-worst" in dom and "02-best" in dom  # the gallery's cases, worst and best first
    assert re.search(r'<img[^>]+src="data:image/png;[^"]*base64,', dom), "no overlay picture shown"
    speed = pd.read_csv(run / "results/tables/speed_accuracy.csv")
    assert {("knee", "tp"), ("hip", "tl")} <= set(zip(speed["dataset"], speed["method"], strict=True))
    assert (speed["train_s"] > 0).all() and (speed["missing"] == 0).all()
    qc_page = (run / "results/report/broken/qc.html").read_text(encoding="utf-8")
    assert "excluded" in qc_page and "<td>empty</td>" in qc_page


def test_a_rerun_has_nothing_to_do(run: Path) -> None:
    result = snakemake("-n", "--cores", "2", cwd=run)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_fatal_qc_stops_the_run_naming_the_subject(tmp_path: Path) -> None:
    config = _config(tmp_path, fatal=True)
    config["datasets"] = {"broken": config["datasets"]["broken"]}
    write_config(tmp_path, config)
    result = snakemake("--cores", "2", "results/qc/broken/sub-shifted_qc.tsv", cwd=tmp_path)
    assert result.returncode != 0
    text = result.stdout + result.stderr + (tmp_path / "logs/qc/broken/shifted.log").read_text()
    assert "subject shifted failed quality control" in text and "origin" in text
    assert not (tmp_path / "results/qc/broken/sub-shifted_qc.tsv").exists()
    shutil.rmtree(tmp_path / "results", ignore_errors=True)


def test_bad_config_value_stops_the_run_naming_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config["datasets"]["broken"]["modality"] = "pet"
    write_config(tmp_path, config)
    result = snakemake("-n", "--cores", "1", cwd=tmp_path)
    assert result.returncode != 0
    text = result.stdout + result.stderr
    assert "'pet' is not one of ['mri', 'ct']" in text and "['broken']['modality']" in text


def test_bad_subject_id_in_manifest_stops_the_run_naming_the_row(tmp_path: Path) -> None:
    config = _config(tmp_path)
    manifest = Path(config["datasets"]["broken"]["source"]["manifest"]["path"])
    frame = pd.read_csv(manifest)
    frame.loc[2, "subject"] = "bad id;rm"
    frame.to_csv(manifest, index=False)
    write_config(tmp_path, config)
    result = snakemake("-n", "--cores", "1", cwd=tmp_path)
    assert result.returncode != 0
    assert "row 3: subject id 'bad id;rm' holds a space" in result.stdout + result.stderr


def test_records_are_gathered_per_batch_of_subjects_then_per_dataset(run: Path) -> None:
    subjects = _table(run, "qc", "broken", "subjects.tsv")
    passed = subjects.loc[subjects["qc_passed"].astype(str) == "True", "subject"].tolist()
    batches = sorted((run / "results/preprocess/broken").glob("batch-*_preprocess.tsv"))
    assert [b.name[:9] for b in batches] == [f"batch-{i:03d}" for i in range((len(passed) + 1) // 2)]
    stacked = pd.concat([pd.read_csv(b, sep="\t", dtype={"subject": str}) for b in batches])["subject"].tolist()
    table = _table(run, "preprocess", "broken", "preprocess.tsv")
    assert table["subject"].tolist() == stacked == passed
    assert {"output.image.shape", "output.image.spacing", "crop.margin_mm"} <= set(table.columns)
    # the knee's three test subjects in two batches; the method's table is their union
    parts = sorted((run / "results/evaluation/knee").glob("method-exact_batch-*_metrics.csv"))
    assert len(parts) == 2
    merged = pd.read_csv(run / "results/evaluation/knee/method-exact_metrics.csv", dtype={"subject": str})
    pd.testing.assert_frame_equal(merged, pd.concat([pd.read_csv(p, dtype={"subject": str}) for p in parts],
                                                    ignore_index=True))
    assert merged["subject"].nunique() == 3
