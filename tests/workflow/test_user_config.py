"""A user's own config file: only its datasets run (the shipped demo datasets stay out), an OAI-ZIB
folder in about ten lines (template: knee), visits of one patient kept in one role, a subset of a folder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mskseg.errors import ConfigError
from mskseg.io import write_volume
from mskseg.volume import Volume
from mskseg.workflow.compose import compose_config, read_shipped
from mskseg.workflow.config import resolve_config
from tests.conftest import sphere_pair
from tests.workflow.wf import REPO, snakemake

#: the user's file, as the README shows it
USER_CONFIG = """\
datasets:
  oai:
    template: knee                # the shipped knee settings: labels, preprocessing, shape, methods, tables
    source:
      layout: {{name: oai-zib, path: {path}, subset: {{first: 5}}}}
    split: {{method: kfold, k: 4, n_val_folds: 1, seed: 3}}
"""
#: <patient>_<visit> ids: 9001104 comes twice; 9009999_00m is the sixth in sorted order (left out by the subset)
SUBJECTS = ["9001104_00m", "9001104_36m", "9002116_00m", "9003380_00m", "9004000_24m", "9009999_00m"]


def _oai_folder(root: Path) -> None:
    """OAI-ZIB as shipped: masks whose headers carry another origin and direction than their image."""
    for n, subject in enumerate(SUBJECTS):
        image, mask = sphere_pair(shape=(20 + n % 2, 24, 16), labels=(1, 2, 3, 4))
        write_volume(image.with_array(image.array + n), root / f"{subject}.mhd")
        write_volume(Volume(mask.array, mask.spacing, (0.0, 0.0, 0.0), np.eye(3)),
                     root / f"{subject}.segmentation_masks.mhd")


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the shipped config.yaml, an OAI-ZIB folder and the user's file; QC and splits run."""
    run = tmp_path_factory.mktemp("user")
    shutil.copy(REPO / "config.yaml", run / "config.yaml")
    _oai_folder(run / "OAIZIB")
    (run / "mine.yaml").write_text(USER_CONFIG.format(path=run / "OAIZIB"), encoding="utf-8")
    result = snakemake("splits", "--configfile", "mine.yaml", "--cores", "2", cwd=run)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return run


def test_a_user_config_plans_only_its_dataset(user_run: Path) -> None:
    dry = snakemake("all", "-n", "--configfile", "mine.yaml", "--cores", "2", cwd=user_run)
    text = dry.stdout + dry.stderr
    assert dry.returncode == 0, text[-3000:]
    datasets = set(re.findall(r"(?:results|logs)/(?:benchmarks/)?[a-z_]+/([A-Za-z0-9_]+)/", text))
    assert datasets == {"oai"}, sorted(datasets)
    assert "synthesize_subject" not in text  # no demo phantom is made
    for rule in ("preprocess_subject", "register_structure", "train_model", "predict_subject"):
        assert rule in text, rule


def test_oai_zib_visits_of_one_patient_stay_in_one_role(user_run: Path) -> None:
    subjects = pd.read_csv(user_run / "results/qc/oai/subjects.tsv", sep="\t", dtype=str)
    assert subjects["subject"].tolist() == SUBJECTS[:5]  # subset: the first five in sorted order
    assert dict(zip(subjects["subject"], subjects["patient"], strict=True))["9001104_36m"] == "9001104"
    assert (subjects["qc_passed"] == "True").all()
    fixed = pd.read_csv(user_run / "results/qc/oai/qc_table.tsv", sep="\t", dtype=str)
    assert (fixed.loc[fixed["check"] == "geometry", "status"] == "fixed").sum() == 5  # wrong headers re-headered
    splits = pd.read_csv(user_run / "results/splits/oai/splits.tsv", sep="\t", dtype=str)
    for _, fold in splits.groupby("split"):
        roles = fold.set_index("subject")["role"]
        assert roles["9001104_00m"] == roles["9001104_36m"]
    assert set(splits.loc[splits["role"] == "test", "subject"]) == set(SUBJECTS[:5])


def test_without_a_user_file_the_demo_datasets_run() -> None:
    shipped = read_shipped(REPO / "config.yaml")
    composed = compose_config(shipped, {"scale": "demo"}, shipped)
    assert set(composed["datasets"]) == {"knee", "hip", "hipspar", "kneedesign", "kneescans", "hipscans"}
    assert set(composed["studies"]) == {"hip_transfer", "knee_shape_fitting", "three_plane_fusion", "cartilage_design",
                                       "spar"}


def test_a_user_dataset_inherits_its_template_and_the_scale() -> None:
    shipped = read_shipped(REPO / "config.yaml")
    user = {"datasets": {"oai": {"template": "knee", "source": {"layout": {"name": "oai-zib", "path": "/d"}},
                                 "split": {"k": 5}}}}
    for scale, base in (("demo", 8), ("paper", 64)):
        merged = {**shipped, **user, "scale": scale}
        config = compose_config(merged, {**user, "scale": scale}, shipped)
        oai = config["datasets"]["oai"]
        assert list(config["datasets"]) == ["oai"]
        assert oai["source"] == user["datasets"]["oai"]["source"]  # replaced, not merged with the phantoms
        assert oai["labels"] == shipped["datasets"]["knee"]["labels"]
        assert oai["split"]["k"] == (5 if scale == "demo" else 10)  # the scale overrides, as in config.yaml
        assert oai["methods"]["unet2d"]["network"]["base"] == base
    # the same name as a shipped dataset: that dataset, changed
    renamed = {"datasets": {"knee": {"split": {"k": 4}}}}
    config = compose_config({**shipped, **renamed}, renamed, shipped)
    assert list(config["datasets"]) == ["knee"] and config["datasets"]["knee"]["split"]["k"] == 4
    assert "synthetic" in config["datasets"]["knee"]["source"]


def test_bad_user_datasets_name_the_key() -> None:
    shipped = read_shipped(REPO / "config.yaml")
    with pytest.raises(ConfigError, match=r"datasets\.oai\.template: .kne. is not a dataset of the shipped"):
        compose_config(shipped, {"datasets": {"oai": {"template": "kne"}}}, shipped)
    with pytest.raises(ConfigError, match=r"empty .datasets. block"):
        compose_config(shipped, {"datasets": {}}, shipped)
    user = {"datasets": {"oai": {"template": "knee", "source": {"layout": {
        "name": "oai-zib", "path": "/d", "visit_pattern": "(?P<pat>.+)_(\\d+m)"}}}}}
    with pytest.raises(ConfigError, match=r"visit_pattern: .* needs a named group \(\?P<patient>"):
        resolve_config({**shipped, **user}, overrides=user, shipped=shipped)
