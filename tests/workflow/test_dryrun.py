import sys
from pathlib import Path

from tests.workflow.wf import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_dryrun import dry_run, pretend_qc_done, write_inputs  # noqa: E402


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
    assert counts == {"synthesize_subject": "18", "qc_subject": "18"}  # 10 knee + 8 hip phantoms
