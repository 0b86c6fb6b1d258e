"""Tests of the hold-out split and the nested, balanced training subsets of mskseg.splits."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import yaml

from mskseg.errors import ConfigError
from mskseg.splits import (
    DEFAULT_CONFIG,
    METHODS,
    SplitError,
    check_splits,
    holdout,
    holdout_counts,
    make_splits,
    patient_order,
    summarise,
    training_subset,
)
from mskseg.splits.holdout import _controlled_rounding
from mskseg.workflow.config import check_dataset
from tests.conftest import REPO


def scans(n_patients: int, *, grades: list[int] | None = None, per_patient: int = 2, seed: int = 0) -> pd.DataFrame:
    """``per_patient`` scans per patient (two time points), the patient's KL grade on every scan."""
    rng = np.random.default_rng(seed)
    if grades is None:
        grades = [int(g) for g in rng.integers(0, 5, size=n_patients)]
    rows = [{"subject": f"P{p:03d}_T{t}", "patient": f"P{p:03d}", "kl_grade": grades[p]}
            for p in range(n_patients) for t in range(per_patient)]
    return pd.DataFrame(rows)


def patients_by_role(splits: pd.DataFrame) -> dict[str, set[str]]:
    return {role: set(part["patient"]) for role, part in splits.groupby("role")}


# ----------------------------------------------------------------------------- hold-out counts


def test_holdout_88_patients_gives_60_14_14():
    subjects = scans(88)
    splits = holdout(subjects, [60, 14, 14], seed=42)
    check_splits(splits)
    assert list(splits.columns) == ["split", "subject", "patient", "role"]
    assert (splits["split"] == 0).all() and splits["split"].dtype == np.int64
    assert sorted(splits["subject"]) == sorted(subjects["subject"])
    s = summarise(splits).set_index("role")
    assert s["n_patients"].to_dict() == {"train": 60, "val": 14, "test": 14}
    assert s["n_subjects"].to_dict() == {"train": 120, "val": 28, "test": 28}
    # both scans of every patient share a role
    assert (splits.groupby("patient")["role"].nunique() == 1).all()
    assert (splits.groupby("patient").size() == 2).all()


def test_fractions_are_normalised():
    subjects = scans(88, seed=1)
    reference = holdout(subjects, [60, 14, 14], seed=3)
    for fractions in ([0.68, 0.16, 0.16], (30, 7, 7), np.array([6.0, 1.4, 1.4])):
        pd.testing.assert_frame_equal(holdout(subjects, fractions, seed=3), reference)
    assert holdout_counts(10, [1, 1, 2]) == {"train": 3, "val": 2, "test": 5}  # 2.5, 2.5, 5: tie -> train


def test_val_fraction_may_be_zero():
    splits = holdout(scans(5), [1, 0, 1], seed=0)
    assert "val" not in set(splits["role"])
    assert {r: len(p) for r, p in patients_by_role(splits).items()} == {"train": 3, "test": 2}  # tie -> train
    assert holdout_counts(2, [0.9, 0, 0.1]) == {"train": 1, "val": 0, "test": 1}


def test_every_positive_role_gets_a_patient():
    assert holdout_counts(3, [98, 1, 1]) == {"train": 1, "val": 1, "test": 1}
    assert holdout_counts(4, [98, 1, 1]) == {"train": 2, "val": 1, "test": 1}
    with pytest.raises(SplitError, match=r"\[60, 14, 14\].*at least 3 patients.*only 2"):
        holdout(scans(2), [60, 14, 14])
    with pytest.raises(SplitError, match=r"at least 2 patients.*only 1"):
        holdout(scans(1), [1, 0, 1])


@pytest.mark.parametrize("fractions", [[0, 1, 1], [1, 1, 0], [1, 1], [1, 1, 1, 1], [-1, 1, 1], [1, float("nan"), 1],
                                       [True, 1, 1], "601414", {"train": 1}, 3, [0, 0, 0]])
def test_invalid_fractions(fractions):
    with pytest.raises(SplitError, match="fractions"):
        holdout(scans(10), fractions)


def test_holdout_counts_are_largest_remainder_brute_force():
    """Where every role's quota is >= 1, the counts minimise sum |count - quota| over all allocations."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(3, 40))
        fractions = [int(x) for x in rng.integers(1, 20, size=3)]
        if rng.random() < 0.3:
            fractions[1] = 0
        quotas = [Fraction(n * f, sum(fractions)) for f in fractions]
        counts = list(holdout_counts(n, fractions).values())
        assert sum(counts) == n
        if all(q >= 1 or f == 0 for q, f in zip(quotas, fractions, strict=True)):
            best = min(sum(abs(c - q) for c, q in zip(cand, quotas, strict=True))
                       for cand in itertools.product(range(n + 1), repeat=3) if sum(cand) == n)
            assert sum(abs(c - q) for c, q in zip(counts, quotas, strict=True)) == best
            assert all(abs(c - q) < 1 for c, q in zip(counts, quotas, strict=True))
        assert all(c >= 1 for c, f in zip(counts, fractions, strict=True) if f > 0)
        assert all(c == 0 for c, f in zip(counts, fractions, strict=True) if f == 0)


# ----------------------------------------------------------------------------- stratified


@pytest.mark.parametrize("seed", range(6))
def test_stratified_holdout_is_proportional_per_stratum(seed):
    sizes = [40, 25, 15, 8]  # 88 patients in 4 strata
    grades = [g for g, m in enumerate(sizes) for _ in range(m)]
    subjects = scans(88, grades=list(np.random.default_rng(seed).permutation(grades)))
    splits = holdout(subjects, [60, 14, 14], stratify="kl_grade", seed=seed)
    check_splits(splits)
    roles = patients_by_role(splits)
    totals = {"train": 60, "val": 14, "test": 14}
    assert {r: len(p) for r, p in roles.items()} == totals
    grade_of = subjects.groupby("patient")["kl_grade"].first()
    for grade, m in enumerate(sizes):
        for role, total in totals.items():
            count = sum(grade_of[p] == grade for p in roles[role])
            assert abs(count - Fraction(m * total, 88)) < 1, (grade, role, count)


def test_controlled_rounding_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(400):
        sizes = [int(x) for x in rng.integers(1, 15, size=int(rng.integers(1, 7)))]
        n = sum(sizes)
        t = sorted(int(x) for x in rng.integers(0, n + 1, size=2))
        totals = [t[0], t[1] - t[0], n - t[1]]
        table = _controlled_rounding(sizes, totals)
        assert [sum(row) for row in table] == sizes
        assert [sum(col) for col in zip(*table, strict=True)] == totals
        for m, row in zip(sizes, table, strict=True):
            for total, cell in zip(totals, row, strict=True):
                assert math.floor(Fraction(m * total, n)) <= cell <= math.ceil(Fraction(m * total, n))


def test_stratified_holdout_uses_kfold_majority_rule_and_missing_stratum():
    subjects = scans(30, seed=2)
    subjects.loc[0, "kl_grade"] = 4  # patient P000's two scans disagree: majority tie -> smallest value
    subjects.loc[[2, 3], "kl_grade"] = None  # missing values form a stratum of their own
    splits = holdout(subjects, [60, 14, 14], stratify="kl_grade", seed=1)
    check_splits(splits)
    with pytest.raises(SplitError, match="'grade'"):
        holdout(subjects, [60, 14, 14], stratify="grade")


# ----------------------------------------------------------------------------- determinism & dispatch


def test_holdout_deterministic_by_seed_and_row_order():
    subjects = scans(50, seed=4)
    a = holdout(subjects, [60, 14, 14], stratify="kl_grade", seed=7)
    shuffled = subjects.sample(frac=1, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, holdout(shuffled, [60, 14, 14], stratify="kl_grade", seed=7))
    assert not a.equals(holdout(subjects, [60, 14, 14], stratify="kl_grade", seed=8))
    assert not holdout(subjects, [60, 14, 14], seed=1).equals(holdout(subjects, [60, 14, 14], seed=2))


def test_make_splits_holdout_dispatch_and_keys():
    subjects = scans(40, seed=5)
    assert "holdout" in METHODS and DEFAULT_CONFIG["fractions"] == [60, 14, 14]
    pd.testing.assert_frame_equal(
        make_splits(subjects, {"method": "holdout", "fractions": [0.7, 0.1, 0.2], "stratify": "kl_grade", "seed": 3}),
        holdout(subjects, [0.7, 0.1, 0.2], stratify="kl_grade", seed=3),
    )
    pd.testing.assert_frame_equal(make_splits(subjects, {"method": "holdout"}), holdout(subjects, [60, 14, 14]))
    # the schema fills every default: a full config is accepted
    full = {**DEFAULT_CONFIG, "method": "holdout", "seed": 42, "k": 5}
    pd.testing.assert_frame_equal(make_splits(subjects, full), holdout(subjects, [60, 14, 14], seed=42))
    with pytest.raises(SplitError, match=r"'fraction'.*fractions"):
        make_splits(subjects, {"method": "holdout", "fraction": [1, 1, 1]})
    with pytest.raises(SplitError, match=r"'bootstrap'.*holdout"):
        make_splits(subjects, {"method": "bootstrap"})
    with pytest.raises(SplitError, match="train and test fractions"):
        make_splits(subjects, {"method": "holdout", "fractions": [1, 1, 0]})


def test_config_check_rejects_zero_train_or_test_fraction():
    ds = yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]["knee"]
    for fractions in ([0, 14, 14], [60, 14, 0]):
        with pytest.raises(ConfigError, match=r"datasets\.knee\.split\.fractions"):
            check_dataset("knee", {**ds, "split": {"method": "holdout", "fractions": fractions}})
    check_dataset("knee", {**ds, "split": {"method": "holdout", "fractions": [60, 0, 14]}})
    check_dataset("knee", {**ds, "split": {"method": "kfold", "fractions": [60, 14, 14]}})


# ----------------------------------------------------------------------------- nested training subsets


def test_subsets_nested_across_sizes():
    subjects = scans(60, seed=6)
    previous: set[str] = set()
    for size in (5, 15, 30, 60):
        subset = training_subset(subjects, size, seed=11, balance_by="kl_grade")
        assert len(subset) == 2 * size  # two scans per patient, patients kept whole
        patients = set(subjects.set_index("subject").loc[subset, "patient"])
        assert len(patients) == size
        assert previous <= set(subset)
        previous = set(subset)
    assert previous == set(subjects["subject"])
    order = patient_order(subjects, seed=11, balance_by="kl_grade")
    assert sorted(order) == sorted(subjects["patient"].unique())
    assert set(subjects.set_index("subject").loc[training_subset(subjects, 15, seed=11, balance_by="kl_grade"),
                                                 "patient"]) == set(order[:15])


def test_subset_keeps_table_order_and_default_patient():
    subjects = scans(20, seed=7).sample(frac=1, random_state=1).reset_index(drop=True)
    subset = training_subset(subjects, 7, seed=0)
    assert subset == [s for s in subjects["subject"] if s in set(subset)]
    alone = pd.DataFrame({"subject": [f"S{i}" for i in range(9)]})  # no patient column: each scan is a patient
    assert sorted(patient_order(alone, seed=2)) == sorted(alone["subject"])
    assert len(training_subset(alone, 4, seed=2)) == 4


@pytest.mark.parametrize(("size", "n"), [(0.25, 15), (0.5, 30), (1.0, 60), (0.001, 1), (0.025, 2), (1, 1), (60, 60)])
def test_fraction_sizes(size, n):
    subjects = scans(60, seed=8, per_patient=1)
    assert len(training_subset(subjects, size, seed=0)) == n  # 0.025 * 60 = 1.5 rounds up


def test_balance_50_50_every_even_prefix():
    grades = [0, 1] * 20
    subjects = scans(40, grades=grades, seed=9)
    for seed in range(5):
        order = patient_order(subjects, seed=seed, balance_by="kl_grade")
        grade_of = subjects.groupby("patient")["kl_grade"].first()
        for n in range(2, 41, 2):
            zeros = sum(grade_of[p] == 0 for p in order[:n])
            assert abs(zeros - n // 2) <= 1
        sub = training_subset(subjects, 10, seed=seed, balance_by="kl_grade")
        assert 4 <= sum(grade_of[s.split("_")[0]] == 0 for s in sub) / 2 <= 6


def test_every_prefix_within_quota_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(60):
        k = int(rng.integers(1, 7))
        grades = [int(g) for g in rng.integers(0, k, size=int(rng.integers(k, 70)))]
        subjects = scans(len(grades), grades=grades, per_patient=1)
        order = patient_order(subjects, seed=trial, balance_by="kl_grade")
        grade_of = dict(zip(subjects["patient"], subjects["kl_grade"], strict=True))
        n_total = len(grades)
        sizes = {g: grades.count(g) for g in set(grades)}
        counts = dict.fromkeys(sizes, 0)
        for n, patient in enumerate(order, 1):
            counts[grade_of[patient]] += 1
            for g, m in sizes.items():
                assert math.floor(Fraction(n * m, n_total)) <= counts[g] <= math.ceil(Fraction(n * m, n_total))


def test_patient_order_deterministic():
    subjects = scans(30, seed=10)
    a = patient_order(subjects, seed=5, balance_by="kl_grade")
    shuffled = subjects.sample(frac=1, random_state=2).reset_index(drop=True)
    assert patient_order(shuffled, seed=5, balance_by="kl_grade") == a
    assert patient_order(subjects, seed=6, balance_by="kl_grade") != a
    assert patient_order(subjects, seed=5) != a or patient_order(subjects, seed=6) != a


@pytest.mark.parametrize("size", [61, 0, -3, 1.5, True, False, float("nan"), "5", None, 0.0])
def test_subset_size_errors(size):
    subjects = scans(60, seed=11)
    with pytest.raises(ValueError, match="size"):
        training_subset(subjects, size, seed=0)


def test_balance_column_errors():
    subjects = scans(10, seed=12)
    with pytest.raises(ValueError, match="'grade'"):
        patient_order(subjects, seed=0, balance_by="grade")
    with pytest.raises(ValueError, match="'grade'"):
        training_subset(subjects, 3, seed=0, balance_by="grade")
    varying = subjects.copy()
    varying.loc[1, "kl_grade"] = varying.loc[0, "kl_grade"] + 1  # P000's time points differ
    with pytest.raises(ValueError, match=r"'kl_grade'.*constant.*'P000'"):
        patient_order(varying, seed=0, balance_by="kl_grade")
    missing = subjects.copy()
    missing.loc[3, "kl_grade"] = None
    with pytest.raises(ValueError, match=r"'kl_grade'.*empty.*'P001_T1'"):
        training_subset(missing, 3, seed=0, balance_by="kl_grade")
    with pytest.raises(ValueError, match="seed"):
        patient_order(subjects, seed=-1)
