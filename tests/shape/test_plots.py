from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mskseg.shape.pca import fit_shape_model
from mskseg.shape.plots import plot_modes, plot_quality
from tests.shape.shape_testutils import modal_shapes, random_pose

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model():
    shapes, *_ = modal_shapes(np.random.default_rng(60), n=10, n_points=120, pose="similarity")
    return fit_shape_model(shapes, [f"s{i}" for i in range(10)])


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000


def assert_svg(path):
    text = path.read_text(encoding="utf-8")
    assert "<svg" in text and len(text) > 1000


def test_plot_quality_writes_png_and_svg(tmp_path):
    table = pd.DataFrame({
        "n_modes": [1, 2, 3],
        "compactness": [0.7, 0.95, 1.0],
        "generalisation_mm": [1.2, 0.6, np.nan],
        "generalisation_sd_mm": [0.3, 0.2, np.nan],
        "specificity_mm": [0.8, 0.9, 1.0],
        "specificity_sd_mm": [0.1, 0.1, 0.2],
    })
    plot_quality(table, tmp_path / "q" / "quality.png", tmp_path / "q" / "quality.svg", title="femur")
    assert_png(tmp_path / "q" / "quality.png")
    assert_svg(tmp_path / "q" / "quality.svg")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["quality.png", "quality.svg"]
    plot_quality(table, tmp_path / "again.png", tmp_path / "again.svg", title="femur")
    assert (tmp_path / "again.svg").read_bytes() == (tmp_path / "q" / "quality.svg").read_bytes()
    with pytest.raises(ValueError, match="compactness"):
        plot_quality(table.drop(columns="compactness"), tmp_path / "bad.png")


def test_plot_modes(model, tmp_path):
    plot_modes(model, tmp_path / "modes.png", n_modes=3, sd=3.0, title="femur modes",
               path_svg=tmp_path / "modes.svg")
    assert_png(tmp_path / "modes.png")
    assert_svg(tmp_path / "modes.svg")


def test_plot_modes_with_fewer_modes_than_asked(tmp_path):
    shapes, *_ = modal_shapes(np.random.default_rng(61), n=2, n_points=80, sds=(10.0,), pose="none")
    one_mode = fit_shape_model(shapes, ["a", "b"])
    assert one_mode.n_modes == 1
    plot_modes(one_mode, tmp_path / "one.png", n_modes=3)
    assert_png(tmp_path / "one.png")
    rng = np.random.default_rng(62)
    copies = np.stack([random_pose(rng).apply(shapes[0]) for _ in range(3)])
    no_modes = fit_shape_model(copies, ["a", "b", "c"])
    assert no_modes.n_modes == 0
    plot_modes(no_modes, tmp_path / "none.png")
    assert_png(tmp_path / "none.png")
