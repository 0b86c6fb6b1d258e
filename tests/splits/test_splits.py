"""Tests of mskseg.splits: patient-level, deterministic data splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mskseg.splits import (
    ROLES,
    SplitError,
    assign_folds,
    check_splits,
    kfold,
    leave_one_out,
    make_splits,
    read_fixed,
    summarise,
)
from mskseg.splits.common import _patient_strata


def make_subjects(n_patients: int, seed: int = 0, max_scans: int = 3) -> pd.DataFrame:
    """Random subjects table: 1..max_scans time points per patient."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        grade = int(rng.integers(0, 5))
        for t in range(int(rng.integers(1, max_scans + 1))):
            rows.append({"subject": f"P{p:03d}_T{t}", "patient": f"P{p:03d}", "kl_grade": grade})
    return pd.DataFrame(rows)


def roles_of(splits: pd.DataFrame, split: int) -> dict[str, set[str]]:
    part = splits[splits["split"] == split]
    return {role: set(part.loc[part["role"] == role, "patient"]) for role in ROLES}


# ----------------------------------------------------------------------------- k-fold


@pytest.mark.parametrize("seed", range(12))
def test_kfold_patients_never_straddle_and_each_subject_tested_once(seed):
    subjects = make_subjects(40 + seed, seed=seed)
    k = 3 + seed % 6
    splits = kfold(subjects, k, n_val_folds=seed % 2, seed=seed, stratify="kl_grade" if seed % 3 else None)
    check_splits(splits)
    assert list(splits.columns) == ["split", "subject", "patient", "role"]
    assert sorted(splits["split"].unique()) == list(range(k))
    assert (splits.groupby(["split", "patient"])["role"].nunique() == 1).all()
    for _, part in splits.groupby("split"):
        assert sorted(part["subject"]) == sorted(subjects["subject"])
    tested = splits.loc[splits["role"] == "test", "subject"]
    assert tested.is_unique and set(tested) == set(subjects["subject"])


def test_kfold_output_sorted():
    splits = kfold(make_subjects(20), 4)
    order = splits["role"].map({r: i for i, r in enumerate(ROLES)})
    keyed = pd.DataFrame({"s": splits["split"], "r": order, "sub": splits["subject"]})
    assert keyed.equals(keyed.sort_values(["s", "r", "sub"]).reset_index(drop=True))
    assert splits["split"].dtype == np.int64


def test_kfold_10_gives_8_1_1_folds():
    subjects = make_subjects(57, seed=3)
    splits = kfold(subjects, 10, seed=1)
    tests = [roles_of(splits, f)["test"] for f in range(10)]  # fold f == test set of split f
    assert all(tests)
    for f in range(10):
        roles = roles_of(splits, f)
        assert roles["val"] == tests[(f + 1) % 10]
        assert roles["train"] == set().union(*(tests[g] for g in range(10) if g not in (f, (f + 1) % 10)))
    s = summarise(splits)
    assert len(s) == 30 and (s["n_patients"] > 0).all()


def test_kfold_without_validation():
    splits = kfold(make_subjects(10), 3, n_val_folds=0)
    assert "val" not in set(splits["role"])
    s = summarise(splits)
    assert (s.loc[s["role"] == "val", "n_subjects"] == 0).all()


def test_kfold_two_val_folds():
    splits = kfold(make_subjects(30), 5, n_val_folds=2)
    tests = [roles_of(splits, f)["test"] for f in range(5)]
    for f in range(5):
        assert roles_of(splits, f)["val"] == tests[(f + 1) % 5] | tests[(f + 2) % 5]


def test_kfold_balanced_by_scans():
    subjects = make_subjects(53, seed=7, max_scans=3)
    folds = assign_folds(subjects, 5, seed=2)
    scans = subjects["patient"].map(folds).value_counts()
    assert len(scans) == 5 and scans.max() - scans.min() <= 3  # greedy: within one patient


def test_kfold_deterministic_and_row_order_invariant():
    subjects = make_subjects(30, seed=1)
    a = kfold(subjects, 5, stratify="kl_grade", seed=4)
    shuffled = subjects.sample(frac=1, random_state=9)[["kl_grade", "patient", "subject"]]
    b = kfold(shuffled, 5, stratify="kl_grade", seed=4)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, kfold(subjects, 5, stratify="kl_grade", seed=4))


def test_kfold_different_seeds_differ():
    subjects = make_subjects(30)
    results = {tuple(kfold(subjects, 5, seed=s)["role"]) for s in range(5)}
    assert len(results) > 1


def test_kfold_stratified_balance():
    # 50 patients, KL 0..4 in unequal proportions, 2 scans each
    counts = {0: 17, 1: 12, 2: 9, 3: 7, 4: 5}
    rows, p = [], 0
    for grade, n in counts.items():
        for _ in range(n):
            rows += [{"subject": f"S{p}_{t}", "patient": f"P{p}", "kl_grade": grade} for t in range(2)]
            p += 1
    subjects = pd.DataFrame(rows)
    for seed in range(5):
        splits = kfold(subjects, 5, stratify="kl_grade", seed=seed)
        test = splits[splits["role"] == "test"].merge(subjects[["subject", "kl_grade"]])
        per_fold = test.groupby(["split", "kl_grade"])["patient"].nunique().unstack(fill_value=0)
        for grade, n in counts.items():
            assert per_fold[grade].between(n // 5, -(-n // 5)).all(), (seed, grade, per_fold[grade])
        sizes = per_fold.sum(axis=1)
        assert sizes.max() - sizes.min() <= 1


def test_stratum_of_patient_mode_ties_and_missing():
    table = pd.DataFrame(
        {
            "patient": ["a", "a", "b", "b", "b", "c", "c", "d", "d", "e"],
            "stratum": [3, 1, 2, np.nan, np.nan, np.nan, 4, "", None, 0],
        }
    )
    strata = _patient_strata(table)
    assert strata["a"] == 1  # tie -> smallest
    assert repr(strata["b"]) == "<missing>"  # missing is the mode
    assert strata["c"] == 4  # tie with missing -> present value
    assert repr(strata["d"]) == "<missing>"  # empty and None are missing
    assert strata["e"] == 0


def test_kfold_stratify_with_missing_values():
    subjects = make_subjects(25, seed=5)
    subjects["kl_grade"] = subjects["kl_grade"].astype(object)
    subjects.loc[::4, "kl_grade"] = np.nan
    subjects.loc[1::7, "kl_grade"] = ""
    check_splits(kfold(subjects, 5, stratify="kl_grade"))


def test_no_patient_column_means_own_patient():
    subjects = make_subjects(12).drop(columns="patient")
    splits = kfold(subjects, 4)
    assert (splits["patient"] == splits["subject"]).all()


def test_integer_ids_become_strings():
    subjects = pd.DataFrame({"subject": range(10), "patient": [i // 2 for i in range(10)]})
    splits = kfold(subjects, 3)
    assert set(splits["subject"]) == {str(i) for i in range(10)}
    check_splits(splits)


def test_too_few_patients():
    subjects = make_subjects(4)
    with pytest.raises(SplitError, match=r"k=5 .*at least 5 patients.*only 4"):
        kfold(subjects, 5)
    with pytest.raises(SplitError, match=r"k >= 3"):
        kfold(make_subjects(10), 2, n_val_folds=1)
    with pytest.raises(SplitError, match=r"at least 3 patients.*only 2"):
        leave_one_out(make_subjects(2))


def test_input_validation():
    subjects = make_subjects(10)
    with pytest.raises(SplitError, match="'subject' column"):
        kfold(subjects.drop(columns="subject"), 3)
    dup = pd.concat([subjects, subjects.iloc[[2]]])
    with pytest.raises(SplitError, match=subjects["subject"].iloc[2]):
        kfold(dup, 3)
    with pytest.raises(SplitError, match=r"'koos'.*columns: 'subject', 'patient', 'kl_grade'"):
        kfold(subjects, 3, stratify="koos")
    no_patient = subjects.copy()
    no_patient.loc[3, "patient"] = None
    with pytest.raises(SplitError, match=subjects["subject"].iloc[3]):
        kfold(no_patient, 3)
    with pytest.raises(SplitError, match="seed"):
        kfold(subjects, 3, seed=-1)


# ----------------------------------------------------------------------------- leave one out


def test_leave_one_out():
    subjects = make_subjects(9, seed=2)
    splits = leave_one_out(subjects, n_val=2, seed=3)
    check_splits(splits)
    patients = sorted(subjects["patient"].unique())
    assert sorted(splits["split"].unique()) == list(range(len(patients)))
    for i, patient in enumerate(patients):
        roles = roles_of(splits, i)
        assert roles["test"] == {patient}
        assert len(roles["val"]) == 2 and patient not in roles["val"]
        assert roles["train"] == set(patients) - {patient} - roles["val"]
    shuffled = subjects.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(splits, leave_one_out(shuffled, n_val=2, seed=3))
    assert not splits.equals(leave_one_out(subjects, n_val=2, seed=4))
    assert "val" not in set(leave_one_out(subjects, n_val=0)["role"])


# ----------------------------------------------------------------------------- fixed files


@pytest.mark.parametrize("suffix, sep", [(".tsv", "\t"), (".csv", ",")])
def test_fixed_round_trip(tmp_path, suffix, sep):
    subjects = make_subjects(15, seed=4)
    splits = kfold(subjects, 3, seed=1)
    path = tmp_path / f"splits{suffix}"
    splits.drop(columns="patient").sample(frac=1, random_state=1).to_csv(path, sep=sep, index=False)
    pd.testing.assert_frame_equal(read_fixed(path, subjects), splits)
    config = {"method": "fixed", "file": path.name}
    pd.testing.assert_frame_equal(make_splits(subjects, config, fixed_base=tmp_path), splits)


def _write(tmp_path, splits: pd.DataFrame, name: str = "s.tsv"):
    path = tmp_path / name
    splits.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def fixed(tmp_path):
    subjects = make_subjects(8, seed=6)
    splits = kfold(subjects, 4, seed=0).drop(columns="patient")
    return tmp_path, subjects, splits


def test_fixed_unknown_subject(fixed):
    tmp_path, subjects, splits = fixed
    splits.loc[0, "subject"] = "ghost_01"
    path = _write(tmp_path, splits)
    with pytest.raises(SplitError, match=r"s\.tsv.*'ghost_01'"):
        read_fixed(path, subjects)


def test_fixed_bad_role(fixed):
    tmp_path, subjects, splits = fixed
    splits.loc[3, "role"] = "holdout"
    path = _write(tmp_path, splits)
    with pytest.raises(SplitError, match=rf"line 5.*'holdout'.*{splits.loc[3, 'subject']}"):
        read_fixed(path, subjects)


def test_fixed_straddling_patient(fixed):
    tmp_path, subjects, splits = fixed
    multi = subjects["patient"].value_counts()
    patient = multi.index[0]
    assert multi.iloc[0] > 1
    scan = subjects.loc[subjects["patient"] == patient, "subject"].iloc[0]
    row = splits.index[(splits["split"] == 0) & (splits["subject"] == scan)][0]
    splits.loc[row, "role"] = "test" if splits.loc[row, "role"] != "test" else "train"
    path = _write(tmp_path, splits)
    with pytest.raises(SplitError, match=rf"s\.tsv.*patient '{patient}' straddles roles in split 0"):
        read_fixed(path, subjects)


def test_fixed_missing_column(fixed):
    tmp_path, subjects, splits = fixed
    path = _write(tmp_path, splits.drop(columns="role"))
    with pytest.raises(SplitError, match=r"s\.tsv.*lacks column.*'role'"):
        read_fixed(path, subjects)


def test_fixed_missing_subject_duplicate_and_empty_role(fixed):
    tmp_path, subjects, splits = fixed
    dropped = splits.iloc[[0]]
    path = _write(tmp_path, splits.drop(index=0))
    with pytest.raises(SplitError, match=rf"split 0 lacks 1 subject.*{dropped['subject'].iloc[0]}"):
        read_fixed(path, subjects)
    path = _write(tmp_path, pd.concat([splits, dropped]))
    with pytest.raises(SplitError, match=rf"{dropped['subject'].iloc[0]}.*more than once in split 0"):
        read_fixed(path, subjects)
    no_test = splits[~((splits["split"] == 1) & (splits["role"] == "test"))].copy()
    moved = (splits["split"] == 1) & (splits["role"] == "test")
    path = _write(tmp_path, pd.concat([no_test, splits[moved].assign(role="train")]))
    with pytest.raises(SplitError, match=r"split 1 has no 'test'"):
        read_fixed(path, subjects)
    path = _write(tmp_path, splits.assign(split=splits["split"] + 1))
    with pytest.raises(SplitError, match=r"0 \.\. n-1"):
        read_fixed(path, subjects)
    with pytest.raises(SplitError, match="does not exist"):
        read_fixed(tmp_path / "nope.tsv", subjects)


def test_fixed_excluded_subjects_dropped(fixed):
    tmp_path, subjects, splits = fixed
    gone = subjects["subject"].iloc[[1, 4]].tolist()
    kept = subjects[~subjects["subject"].isin(gone)]
    path = _write(tmp_path, splits)
    with pytest.raises(SplitError, match=gone[0]):
        read_fixed(path, kept)
    result = read_fixed(path, kept, excluded=set(gone))
    assert not result["subject"].isin(gone).any()
    assert len(result) == len(splits) - 4 * len(gone)
    result2 = make_splits(kept, {"method": "fixed", "file": str(path)}, excluded=gone)
    pd.testing.assert_frame_equal(result, result2)
    # an excluded subject may also be absent from the file
    path = _write(tmp_path, splits[splits["subject"] != gone[0]])
    read_fixed(path, subjects, excluded={gone[0]})


# ----------------------------------------------------------------------------- dispatch & checks


def test_make_splits_dispatch_and_defaults():
    subjects = make_subjects(20)
    pd.testing.assert_frame_equal(make_splits(subjects, {}), kfold(subjects, 5))
    pd.testing.assert_frame_equal(
        make_splits(subjects, {"method": "kfold", "k": 4, "stratify": "kl_grade", "seed": 2, "n_val_folds": 0}),
        kfold(subjects, 4, stratify="kl_grade", seed=2, n_val_folds=0),
    )
    pd.testing.assert_frame_equal(
        make_splits(subjects, {"method": "loo", "n_val": 2, "seed": 1}), leave_one_out(subjects, n_val=2, seed=1)
    )
    with pytest.raises(SplitError, match=r"'bootstrap'.*kfold, loo, fixed"):
        make_splits(subjects, {"method": "bootstrap"})
    with pytest.raises(SplitError, match=r"'kk'"):
        make_splits(subjects, {"kk": 3})
    with pytest.raises(SplitError, match="file"):
        make_splits(subjects, {"method": "fixed"})


def test_check_splits_detects_problems():
    splits = kfold(make_subjects(10, seed=8), 3)
    check_splits(splits)
    dup = pd.concat([splits, splits.iloc[[0]]])
    with pytest.raises(SplitError, match=rf"{splits['subject'].iloc[0]}.*more than once"):
        check_splits(dup)
    bad = splits.copy()
    patient = bad["patient"].value_counts().index[0]
    first = bad.index[(bad["split"] == 2) & (bad["patient"] == patient)][0]
    bad.loc[first, "role"] = "val" if bad.loc[first, "role"] != "val" else "train"
    with pytest.raises(SplitError, match=rf"patient '{patient}' straddles roles in split 2"):
        check_splits(bad)


def test_summarise():
    subjects = make_subjects(12, seed=3)
    s = summarise(kfold(subjects, 3))
    assert list(s.columns) == ["split", "role", "n_subjects", "n_patients"]
    assert (s.groupby("split")["n_subjects"].sum() == len(subjects)).all()
    assert (s.groupby("split")["n_patients"].sum() == subjects["patient"].nunique()).all()
