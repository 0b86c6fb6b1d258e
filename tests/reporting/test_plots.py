"""Tests of mskseg.reporting.plots: files written atomically, valid, and robust to NaN."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mskseg.reporting.plots import box_plot, fov_plot, metric_label, power_law_plot
from mskseg.reporting.tables import fov_curve
from mskseg.stats import power_law_fit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_outputs(paths: tuple[Path, Path], folder: Path, stem: str) -> None:
    png, svg = paths
    assert png == folder / f"{stem}.png" and svg == folder / f"{stem}.svg"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 1000
    text = svg.read_text(encoding="utf-8")
    assert text.startswith("<?xml") and "<svg" in text and text.rstrip().endswith("</svg>")
    assert sorted(p.name for p in folder.iterdir()) == sorted([png.name, svg.name])  # no temporary files
    assert plt.get_fignums() == []


def _metrics() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for s in ("femur", "tibia", "patella"):
        for m, off in (("unet", 2.0), ("atlas", 3.0), ("broken", np.nan)):
            for i in range(8):
                rows.append({"method": m, "subject": f"s{i}", "structure": s,
                             "hd95_mm": off + rng.random() if s != "patella" else np.nan})
    return pd.DataFrame(rows)


def test_metric_label() -> None:
    assert metric_label("hd95_mm") == "hd95 (mm)"
    assert metric_label("ref_volume_mm3") == "ref_volume (mm$^3$)"
    assert metric_label("dice") == "dice"


def test_box_plot_with_nan_cells(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "figures"
    paths = box_plot(_metrics(), "hd95_mm", folder / "box.hd95", title="HD95")
    _check_outputs(paths, folder, "box.hd95")


def test_box_plot_is_reproducible_and_respects_selection(tmp_path: Path) -> None:
    frame = _metrics()
    first = box_plot(frame, "hd95_mm", tmp_path / "a", methods=["atlas", "unet"], structures=["tibia"])
    second = box_plot(frame, "hd95_mm", tmp_path / "b", methods=["atlas", "unet"], structures=["tibia"])
    assert first[1].read_bytes() == second[1].read_bytes()
    with pytest.raises(ValueError, match="lacks"):
        box_plot(frame, "dice", tmp_path / "c")


def test_fov_plot(tmp_path: Path) -> None:
    rows = []
    for m in ("unet", "atlas"):
        for subject in ("s1", "s2", "s3"):
            for k in range(30):
                pos = 100.0 * k / 29
                dice = np.nan if (m == "atlas" and pos > 80) else 0.9 - 0.3 * abs(pos - 50) / 50
                rows.append({"method": m, "subject": subject, "structure": "femoral cartilage", "slice": k,
                             "position_pct": pos, "dice": dice})
    rows.append({"method": "unet", "subject": "s1", "structure": "all-NaN", "slice": 0, "position_pct": 50.0,
                 "dice": np.nan})
    curve = fov_curve(pd.DataFrame(rows), bins=10)
    _check_outputs(fov_plot(curve, tmp_path / "fov", title="FOV"), tmp_path, "fov")


def test_power_law_plot(tmp_path: Path) -> None:
    rows = []
    for series, a in (("2D U-Net", 0.6), ("3D U-Net", 0.55)):
        for n in (5, 10, 20, 40):
            for run in range(3):
                rows.append({"series": series, "n_train": n, "dice": a * n**0.1 + 0.005 * run})
    rows.append({"series": "no fit", "n_train": 10, "dice": np.nan})
    points = pd.DataFrame(rows)
    fits = {s: power_law_fit(g["n_train"], g["dice"]) for s, g in points.dropna().groupby("series")}
    fits["fit only"] = fits["2D U-Net"]
    _check_outputs(power_law_plot(points, fits, tmp_path / "power", title="Power law"), tmp_path, "power")
    with pytest.raises(ValueError, match="positive"):
        power_law_plot(points.assign(n_train=0), fits, tmp_path / "bad")
