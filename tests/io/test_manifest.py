from pathlib import Path

import pandas as pd
import pytest

from mskseg.io.manifest import ManifestError, add_covariates, is_valid_subject_id, read_manifest, write_manifest
from mskseg.workflow.paths import entity_path


def _write(path: Path, rows: list[dict], sep: str = "\t") -> Path:
    pd.DataFrame(rows).to_csv(path, sep=sep, index=False)
    return path


def test_manifest_resolves_relative_paths_and_fills_patient(tmp_path: Path) -> None:
    m = _write(tmp_path / "m.csv", [
        {"subject": "s01", "image": "img/s01.nii.gz", "label": "lab/s01.nii.gz", "kl_grade": "2"},
        {"subject": "s02", "image": "/abs/s02.mha", "label": "", "kl_grade": "3"},
    ], sep=",")
    frame = read_manifest(m)
    assert frame.loc[0, "image"] == str(tmp_path / "img/s01.nii.gz")
    assert frame.loc[1, "image"] == "/abs/s02.mha"
    assert frame.loc[1, "label"] == ""
    assert frame["patient"].tolist() == ["s01", "s02"]
    assert frame["kl_grade"].tolist() == ["2", "3"]  # other columns kept as text


@pytest.mark.parametrize("bad, why", [
    ("a/b", "path separator '/'"), ("a b", "a space"), ("a;rm", "';'"), ("$(x)", "'$'"),
    ("..", "holds '..'"), (".x", "starts with '.'"), ("-x", "starts with '-'"), ("a\\b", "path separator"),
    ("é1", "'é'"),
])
def test_bad_subject_id_is_rejected_naming_the_row(tmp_path: Path, bad: str, why: str) -> None:
    m = _write(tmp_path / "m.tsv", [{"subject": "ok1", "image": "x.nii"}, {"subject": bad, "image": "y.nii"}])
    with pytest.raises(ManifestError) as err:
        read_manifest(m)
    assert "row 2" in str(err.value) and repr(bad) in str(err.value) and why in str(err.value)
    assert str(m) in str(err.value)


def test_duplicate_ids_missing_columns_and_empty_images(tmp_path: Path) -> None:
    m = _write(tmp_path / "dup.tsv", [{"subject": "a", "image": "x"}, {"subject": "a", "image": "y"}])
    with pytest.raises(ManifestError, match="duplicate subject ids: a"):
        read_manifest(m)
    m = _write(tmp_path / "col.tsv", [{"id": "a", "image": "x"}])
    with pytest.raises(ManifestError, match="missing column"):
        read_manifest(m)
    m = _write(tmp_path / "img.tsv", [{"subject": "a", "image": ""}])
    with pytest.raises(ManifestError, match=r"row.* 1 give no image"):
        read_manifest(m)
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "none.tsv")
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(ManifestError, match=r".csv or .tsv"):
        read_manifest(tmp_path / "m.json")


def test_numeric_ids_stay_text_and_round_trip(tmp_path: Path) -> None:
    m = _write(tmp_path / "m.tsv", [{"subject": "9001104", "image": "a.nii", "patient": "0042"}])
    frame = read_manifest(m)
    assert frame.loc[0, "subject"] == "9001104" and frame.loc[0, "patient"] == "0042"
    write_manifest(frame, tmp_path / "out.tsv")
    assert read_manifest(tmp_path / "out.tsv").loc[0, "patient"] == "0042"


def test_covariates_join_on_subject(tmp_path: Path) -> None:
    m = read_manifest(_write(tmp_path / "m.tsv", [{"subject": "a", "image": "x"}, {"subject": "b", "image": "y"}]))
    cov = _write(tmp_path / "kl.csv", [{"subject": "a", "kl_grade": 3, "patient": "P1"}], sep=",")
    out = add_covariates(m, cov)
    assert out.set_index("subject").loc["a", "kl_grade"] == "3"
    assert out.set_index("subject")["patient"].to_dict() == {"a": "P1", "b": "b"}


def test_entity_paths_and_id_rule() -> None:
    assert entity_path("qc", "knee", "qc.tsv", subject="s1") == "results/qc/knee/sub-s1_qc.tsv"
    assert (entity_path("train", "hip", "model.pt", fold="3", view="axial")
            == "results/train/hip/fold-3_view-axial_model.pt")
    assert is_valid_subject_id("9001104.v00_R-1") and not is_valid_subject_id("a..b")
