"""The hip paper's Table 1 from round scores: means, SDs, the paired tests and the Markdown."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mskseg.reporting.transfer_table import (
    earlier_frame,
    final_frame,
    transfer_markdown,
    transfer_table,
    unseen_frame,
)

SUBJECTS = [f"s{i}" for i in range(8)]


def _metrics(path, subject_dice: dict[str, float], *, round_: int | None = None, n_train: int | None = None) -> None:
    rows = []
    for subject, dice in subject_dice.items():
        for structure, value in (("a", dice - 0.01), ("b", dice + 0.01), ("all", dice)):
            row = {"subject": subject, "structure": structure, "dice": value, "hd_mm": 10 * (1 - value),
                   "collisions": 100}
            if round_ is not None:
                row = {"round": round_, "n_train": n_train, **row}
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture
def frames(tmp_path):
    rng = np.random.default_rng(0)
    full = {s: 0.95 + 0.01 * rng.random() for s in SUBJECTS}
    worse = {s: v - 0.05 - 0.01 * rng.random() for s, v in full.items()}
    same = {s: v + (0.001 if i % 2 else -0.001) for i, (s, v) in enumerate(full.items())}
    files, finals, rounds = [], [], []
    for label, values in (("full", full), ("worse", worse), ("same", same)):
        for fold, subjects in (("0", SUBJECTS[:4]), ("1", SUBJECTS[4:])):
            early = tmp_path / f"{label}{fold}_early.csv"
            _metrics(early, {s: values[s] - 0.1 for s in subjects}, round_=1, n_train=2)
            files.append((label, fold, early))
            table = tmp_path / f"{label}{fold}_rounds.csv"
            pd.DataFrame({"round": [1, 2], "n_train": [2, 4], "collisions_per_subject": [900.0, 300.0]}).to_csv(
                table, index=False)
            rounds.append((label, fold, table))
            for s in subjects:
                final = tmp_path / f"{label}_{s}.csv"
                _metrics(final, {s: values[s]})
                finals.append((label, fold, s, final))
    unseen = unseen_frame(rounds)
    return pd.concat([earlier_frame(files), final_frame(finals, unseen)], ignore_index=True), unseen, full, worse


def test_rows_per_method_and_round_with_means_over_the_test_subjects(frames) -> None:
    scores, unseen, full, _ = frames
    table = transfer_table(scores, unseen, metrics=["dice", "hd_mm"], order=["full", "worse", "same"],
                           reference="full")
    assert list(zip(table["method"], table["round"], table["n_train"], strict=True)) == [
        ("full", 1, 2), ("full", 2, 4), ("worse", 1, 2), ("worse", 2, 4), ("same", 1, 2), ("same", 2, 4)]
    last = table.set_index(["method", "round"])
    assert last.loc[("full", 2), "dice_mean"] == pytest.approx(np.mean(list(full.values())))
    assert last.loc[("full", 2), "dice_sd"] == pytest.approx(np.std(list(full.values()), ddof=1))
    assert last.loc[("full", 1), "dice_mean"] == pytest.approx(np.mean(list(full.values())) - 0.1)
    assert (table["n_test"] == 8).all()
    assert last.loc[("full", 1), "unseen_collisions"] == 900 and last.loc[("full", 2), "unseen_collisions"] == 300


def test_a_method_worse_on_every_subject_is_marked_and_one_that_is_not_is_not(frames) -> None:
    scores, unseen, full, worse = frames
    table = transfer_table(scores, unseen, metrics=["dice"], order=["full", "worse", "same"], reference="full")
    marks = table.set_index(["method", "round"])["dice_differs"]
    # brute force: the exact two-sided signed-rank p of 8 one-signed pairs is 2/256, Holm over 2 methods
    p = stats.wilcoxon([worse[s] for s in SUBJECTS], [full[s] for s in SUBJECTS]).pvalue
    assert p == pytest.approx(2 / 256) and min(1.0, 2 * p) < 0.05
    assert marks[("worse", 2)] and not marks[("same", 2)] and not marks[("full", 2)]


def test_markdown_has_a_line_per_row_the_legend_and_notes(frames) -> None:
    scores, unseen, *_ = frames
    table = transfer_table(scores, unseen, metrics=["dice", "collisions"], order=["full", "worse"],
                           reference="full")
    text = transfer_markdown(table, metrics=["dice", "collisions"], title="hip: Table 1", reference="full",
                             notes={"Expert correction": "the reference labels"})
    lines = text.splitlines()
    assert lines[0] == "hip: Table 1" and "| Dice | \\|E\\| test | \\|E\\| per next scan |" in lines[2]
    assert all(len(re.split(r"(?<!\\)\|", line)) == len(re.split(r"(?<!\\)\|", lines[2]))
               for line in lines[3:] if line.startswith("|"))  # the escaped bars make no extra columns
    assert sum(line.startswith("| worse |") for line in lines) == 2
    assert "| 100 ± 0 |" in text
    assert "†" in next(line for line in lines if line.startswith("| worse | 2 |"))
    assert lines[-1] == "Expert correction: the reference labels"


def test_bad_inputs_are_named(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"x": [1]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match=r"bad\.csv"):
        earlier_frame([("a", "0", bad)])
    with pytest.raises(ValueError, match="no rounds table of a, fold 0"):
        final_frame([("a", "0", "s", bad)], unseen_frame([]))
    with pytest.raises(ValueError, match="speed"):
        transfer_table(pd.DataFrame({"method": ["a"], "round": [1], "subject": ["s"], "dice": [1.0]}),
                       unseen_frame([]), metrics=["speed"], order=["a"], reference="a")
