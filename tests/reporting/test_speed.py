"""The speed/accuracy table from benchmark files, prediction records and metrics tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from mskseg.reporting.speed import MethodCosts, read_benchmark, speed_accuracy_frame, speed_accuracy_page

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(path: Path, *rows: tuple[float, float]) -> Path:
    path.write_text(HEADER + "".join(f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t50\t1\n" for s, rss in rows))
    return path


def _metrics(path: Path, rows: list[tuple[str, str, float]]) -> Path:
    pd.DataFrame(rows, columns=["subject", "structure", "dice"]).to_csv(path, index=False)
    return path


def test_a_row_sums_training_takes_peaks_and_averages_inference(tmp_path: Path) -> None:
    metrics = _metrics(tmp_path / "m.csv", [("s1", "femur", 0.9), ("s1", "tibia", 0.7), ("s1", "all", 0.0),
                                            ("s2", "femur", 0.8), ("s2", "tibia", 0.5), ("s2", "all", 0.0)])
    train = [_bench(tmp_path / "t0.tsv", (99.0, 1.0), (10.0, 500.0)),  # a retry: the last row counts
             _bench(tmp_path / "t1.tsv", (20.5, 700.0))]
    predict = [_bench(tmp_path / f"p{i}.tsv", (3.0 + i, 400.0 + i)) for i in range(2)]
    records = []
    for i, seconds in enumerate((0.5, 1.5)):
        records.append(tmp_path / f"r{i}.json")
        records[-1].write_text(json.dumps({"seconds": seconds, "device": "cpu (1 threads, 2 cores)"}))
    costs = MethodCosts(dataset="knee", method="unet", metrics=metrics, training=train, predictions=predict,
                        records=records, shared=["pre (pre-training)"])
    row = speed_accuracy_frame([costs]).iloc[0]
    assert row["dice_femur"] == pytest.approx(0.85) and row["dice_tibia"] == pytest.approx(0.6)
    assert row["dice_all"] == pytest.approx(0.725)
    assert row["train_s"] == pytest.approx(30.5) and row["train_peak_mb"] == 700.0
    assert row["infer_s"] == pytest.approx(1.0) and row["predict_job_s"] == pytest.approx(3.5)
    assert row["predict_peak_mb"] == 401.0 and row["device"] == "cpu (1 threads, 2 cores)"
    assert row["shared"] == "pre (pre-training)" and row["missing"] == 0


def test_missing_files_give_nan_and_are_counted_and_a_bad_one_is_named(tmp_path: Path) -> None:
    metrics = _metrics(tmp_path / "m.csv", [("s1", "a", 1.0)])
    costs = MethodCosts(dataset="d", method="m", metrics=metrics, training=[tmp_path / "gone.tsv"],
                        predictions=[tmp_path / "gone2.tsv"], records=[tmp_path / "gone.json"])
    row = speed_accuracy_frame([costs]).iloc[0]
    assert math.isnan(row["train_s"]) and math.isnan(row["infer_s"]) and row["missing"] == 3
    bad = tmp_path / "bad.tsv"
    bad.write_text("x\ty\n1\t2\n")
    with pytest.raises(ValueError, match=r"bad\.tsv: not a Snakemake benchmark file"):
        read_benchmark(bad)


def test_datasets_keep_their_own_structures_on_the_page(tmp_path: Path) -> None:
    knee = MethodCosts(dataset="knee", method="u", metrics=_metrics(tmp_path / "k.csv", [("s", "femur", 0.9)]))
    hip = MethodCosts(dataset="hip", method="u", metrics=_metrics(tmp_path / "h.csv", [("s", "sacrum", 0.8)]))
    frame = speed_accuracy_frame([knee, hip])
    assert list(frame["dataset"]) == ["knee", "hip"] and math.isnan(frame.loc[1, "dice_femur"])
    page = speed_accuracy_page(frame)
    knee_part, hip_part = page.split("<h3>hip</h3>")
    assert "dice_femur" in knee_part and "dice_sacrum" not in knee_part
    assert "dice_sacrum" in hip_part and "dice_femur" not in hip_part.split("<p")[0]
