import subprocess
import sys
from pathlib import Path

from tests.workflow.wf import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_dryrun import dry_run, pretend_qc_done, write_inputs


def test_dry_run_of_507_subjects_with_10_fold_cv(tmp_path: Path) -> None:
    _, counts, text = dry_run(write_inputs(tmp_path, 507, 10))
    assert counts["qc_subject"] == 507, text[-3000:]
    assert counts["qc_summary"] == 1 and counts["dataset_manifest"] == 1 and counts["make_splits"] == 1
    assert not (tmp_path / "results").exists()  # a dry run writes nothing


def test_dry_run_past_the_qc_checkpoint_plans_every_passing_subject(tmp_path: Path) -> None:
    folder = write_inputs(tmp_path, 507, 10)
    pretend_qc_done(folder, 507)
    _, counts, text = dry_run(folder)
    assert counts["preprocess_subject"] == 507 and "qc_subject" not in counts, text[-3000:]
    # the shape stage: one registration and one landmark job per subject and bone (femur, tibia)
    assert counts["register_structure"] == 2 * 507 and counts["warp_landmarks"] == 2 * 507
    assert counts["select_reference"] == 2 and counts["correspondence_table"] == 2


def test_default_config_dry_run_plans_both_synthetic_datasets(tmp_path: Path) -> None:
    import shutil

    from tests.workflow.wf import snakemake

    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")  # the shipped config, a clean folder
    result = snakemake("-n", "--cores", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    assert "synthesize_subject" in text and "qc_summary" in text
    counts = dict(line.split()[:2] for line in text.splitlines() if line.split()[:1] in (["synthesize_subject"],
                                                                                         ["qc_subject"]))
    # 10 knee + 8 hip phantoms to train on, 1 + 1 new scans to segment (kneescans, hipscans)
    assert counts == {"synthesize_subject": "20", "qc_subject": "20"}


def test_slurm_profile_submits_a_batch_of_subjects_chains_as_one_job_and_gpu_rules_alone(tmp_path: Path) -> None:
    from bench_cluster_jobs import cluster_jobs, prepare

    folder = prepare(tmp_path, 12, 3, batch_subjects=5)  # batches of 5, 5 and 2 subjects
    alone, per_alone, _ = cluster_jobs(folder, grouped=False)
    grouped, per_grouped, _ = cluster_jobs(folder, grouped=True)
    assert per_alone["preprocess_subject"] == 12 and per_alone["register_structure"] == 2 * 12
    assert per_alone["preprocess_batch"] == per_alone["landmarks_batch"] == 3
    assert per_alone["batch_metrics"] == 3 * 3  # three methods
    assert per_grouped["group: preprocess_batch + preprocess_subject + weight_map"] == 3
    assert per_grouped["group: landmarks_batch + register_structure + warp_landmarks"] == 3
    assert per_grouped["group: batch_metrics + evaluate_subject + perturb_prediction"] == 2 * 3  # perturbed
    assert per_grouped["group: batch_metrics + evaluate_subject"] == 3  # the trained method (GPU predictions alone)
    for rule in ("train_model", "predict_subject", "shape_model", "select_reference", "collect_metrics"):
        assert per_grouped[rule] == per_alone[rule] > 0, rule  # never grouped
    grouped_away = (12 + 12 + 3) + (2 * 12 + 2 * 12 + 3) + (2 * 12 + 3 * 12 + 9)
    assert alone - grouped == grouped_away - (3 + 3 + 3 * 3), (grouped, alone)  # each batch one job


def test_studies_share_trained_models_nothing_is_trained_twice(tmp_path: Path, monkeypatch) -> None:
    """Three studies on one dataset: the knee paper's (unet2d, the pre-segmentation of shapefit), the three-plane
    fusion (its sagittal model is trained as unet2d is) and the cartilage design's training sizes (the full size
    is unet2d itself). The dry run's training jobs: each model once, never two with equal settings."""
    import re

    import pandas as pd
    import yaml

    from mskseg.splits import make_splits
    from mskseg.workflow.config import resolve_config
    from mskseg.workflow.plan import Plan

    folder = write_inputs(tmp_path, 12, 3)
    pretend_qc_done(folder, 12)
    subjects = pd.read_csv(folder / "manifest.tsv", sep="\t", dtype=str)
    splits = make_splits(subjects, {"method": "kfold", "k": 3, "n_val_folds": 1, "seed": 1})
    (folder / "results" / "splits" / "oai").mkdir(parents=True)
    splits.to_csv(folder / "results" / "splits" / "oai" / "splits.tsv", sep="\t", index=False)
    user = {"datasets": {"oai": {"template": "knee", "source": {"manifest": {"path": "manifest.tsv"}},
                                 "split": {"method": "kfold", "k": 3, "n_val_folds": 1, "seed": 1},
                                 "evaluation": {"methods": ["unet2d", "unet3plane", "shapefit"]}}},
            "studies": {"knee_shape_fitting": {"dataset": "oai", "rows": [{"label": "2D U-Net", "method": "unet2d"},
                                                                          {"label": "full", "method": "shapefit"}]},
                        "three_plane_fusion": {"dataset": "oai", "method": "unet3plane"},
                        "cartilage_design": {"dataset": "oai", "training_size": {"methods": ["unet2d"], "sizes": [2]},
                                             "experiments": {"planes": [{"label": "sagittal", "method": "unet2d"},
                                                                        {"label": "fused", "method": "unet3plane"}]}}}}
    (folder / "config.yaml").write_text((REPO / "config.yaml").read_text())  # the shipped one, and the user's:
    (folder / "mine.yaml").write_text(yaml.safe_dump(user))
    result = subprocess.run([sys.executable, "-m", "snakemake", "all", "three_plane_fusion", "cartilage_design", "-n",
                             "--cores", "2", "--snakefile", str(REPO / "Snakefile"), "--configfile", "mine.yaml"],
                            cwd=folder, text=True, capture_output=True, check=False)
    text = result.stdout + result.stderr
    assert result.returncode == 0, text[-3000:]
    jobs = [dict(kv.split("=") for kv in m.group(1).split(", "))
            for m in re.finditer(r"^rule train_model:\n(?:.*\n)*?\s+wildcards: (.*)$", text, re.M)]
    trained = sorted((j["method"], j["fold"], j["view"]) for j in jobs)
    assert len(trained) == len(set(trained)), trained
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    monkeypatch.chdir(folder)  # the manifest's relative path
    plan = Plan.from_config(resolve_config({**shipped, **user}, overrides=user, shipped=shipped))["oai"]
    keys = [(fold, view, plan.trained[method].view_training_key(view)) for method, fold, view in trained]
    assert len(keys) == len(set(keys)), "two training jobs with equal settings"
    folds = ["0", "1", "2"]
    assert {(m, v) for m, _, v in trained} == {("unet2d", "sagittal"), ("unet3plane", "axial"),
                                              ("unet3plane", "coronal"), ("unet2dN2S1", "sagittal")}
    assert sorted(f for m, f, _ in trained if m == "unet2d") == folds  # shared by the three studies
