from __future__ import annotations

import json

import numpy as np
import pytest

from mskseg.shape.pca import fit_shape_model, load_shape_model, save_shape_model
from mskseg.shape.storage import FORMAT, TRANSFORM_CONVENTION, ShapeModelFormatError
from tests.shape.shape_testutils import modal_shapes


@pytest.fixture(scope="module")
def model():
    shapes, *_ = modal_shapes(np.random.default_rng(40), n=12, n_points=80, pose="similarity")
    return fit_shape_model(shapes, [f"knee-{i}" for i in range(12)], n_modes=3,
                           metadata={"bone": "femur", "fold": 2, "dataset": "synthetic"})


def saved(model, tmp_path):
    npz, header = save_shape_model(model, tmp_path / "femur_ssm.npz", tmp_path / "femur_ssm.json")
    return npz, header


def test_round_trip(model, tmp_path):
    npz, _header = saved(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["femur_ssm.json", "femur_ssm.npz"]  # no temporary files
    back = load_shape_model(npz)
    for name in ("mean", "modes", "variances", "coefficients"):
        np.testing.assert_array_equal(getattr(back, name), getattr(model, name))
    assert back.total_variance == model.total_variance
    assert back.subjects == model.subjects
    assert back.scale is True
    assert back.metadata == model.metadata
    for a, b in zip(back.transforms, model.transforms, strict=True):
        assert a.scale == b.scale
        np.testing.assert_array_equal(a.rotation, b.rotation)
        np.testing.assert_array_equal(a.translation, b.translation)
    shape = model.instance(model.sd[:2], model.transforms[3])
    np.testing.assert_array_equal(back.reconstruct(shape, 2), model.reconstruct(shape, 2))


def test_header_fields(model, tmp_path):
    npz, header_path = saved(model, tmp_path)
    header = json.loads(header_path.read_text(encoding="utf-8"))
    assert header["format"] == FORMAT == "mskseg-shape-model"
    assert header["version"] == 1
    assert header["units"] == "mm"
    assert (header["n_points"], header["n_modes"], header["n_subjects"]) == (80, 3, 12)
    assert header["subjects"] == model.subjects
    assert header["scale"] is True
    assert header["total_variance_mm2"] == model.total_variance
    np.testing.assert_allclose(header["explained_variance_ratio"], model.explained_ratio)
    np.testing.assert_allclose(header["cumulative_variance_ratio"], np.cumsum(model.explained_ratio))
    assert header["transform_convention"] == TRANSFORM_CONVENTION
    assert header["metadata"] == {"bone": "femur", "fold": 2, "dataset": "synthetic"}
    with np.load(npz) as data:
        assert set(data.files) == set(header["arrays"])
        for name in data.files:
            assert list(data[name].shape) == header["arrays"][name]["shape"]
            assert header["arrays"][name]["meaning"]
        assert data["rotations"].shape == (12, 3, 3)


def test_default_header_path_and_explicit_path(model, tmp_path):
    npz, header = save_shape_model(model, tmp_path / "a" / "model.npz")
    assert header == tmp_path / "a" / "model.json"
    assert load_shape_model(npz).subjects == model.subjects
    npz2, header2 = save_shape_model(model, tmp_path / "b.npz", tmp_path / "elsewhere" / "b_header.json")
    with pytest.raises(FileNotFoundError, match=r"b.json"):
        load_shape_model(npz2)
    assert load_shape_model(npz2, header2).n_modes == model.n_modes


def edit_header(path, **changes):
    header = json.loads(path.read_text(encoding="utf-8"))
    header.update(changes)
    path.write_text(json.dumps(header), encoding="utf-8")


@pytest.mark.parametrize("changes, message", [
    ({"format": "something-else"}, "format"),
    ({"version": 2}, "version"),
    ({"units": "cm"}, "units"),
    ({"n_points": 81}, "mean"),
    ({"n_modes": 2}, "modes"),
    ({"n_subjects": 11}, "coefficients"),
    ({"subjects": [f"other-{i}" for i in range(12)]}, "subjects differ"),
    ({"scale": "yes"}, "scale"),
    ({"metadata": [1, 2]}, "metadata"),
])
def test_mismatched_header_raises_naming_the_file(model, tmp_path, changes, message):
    npz, header = saved(model, tmp_path)
    edit_header(header, **changes)
    with pytest.raises(ValueError, match=message) as info:
        load_shape_model(npz)
    assert "femur_ssm" in str(info.value)
    assert isinstance(info.value, ShapeModelFormatError)


def test_missing_header_key_raises(model, tmp_path):
    npz, header_path = saved(model, tmp_path)
    header = json.loads(header_path.read_text(encoding="utf-8"))
    del header["total_variance_mm2"]
    header_path.write_text(json.dumps(header), encoding="utf-8")
    with pytest.raises(ValueError, match=r"femur_ssm\.json.*total_variance_mm2"):
        load_shape_model(npz)


def test_corrupt_files_raise_naming_the_file(model, tmp_path):
    npz, header = saved(model, tmp_path)
    header.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"femur_ssm\.json"):
        load_shape_model(npz)
    npz, header = saved(model, tmp_path)
    npz.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"femur_ssm\.npz"):
        load_shape_model(npz)


def test_npz_from_another_model_is_rejected(model, tmp_path):
    shapes, *_ = modal_shapes(np.random.default_rng(41), n=12, n_points=80, pose="none")
    other = fit_shape_model(shapes, model.subjects, n_modes=2)
    npz, _ = saved(model, tmp_path)
    save_shape_model(other, tmp_path / "other.npz")
    (tmp_path / "other.npz").replace(npz)  # arrays of a 2-mode model under a 3-mode header
    with pytest.raises(ValueError, match=r"femur_ssm\.npz.*modes"):
        load_shape_model(npz)


def test_non_json_metadata_fails_before_writing(model, tmp_path):
    model_copy = fit_shape_model(np.stack([model.instance([0.0]), model.instance(model.sd[:1])]), ["a", "b"],
                                 metadata={"bad": object()})
    with pytest.raises(TypeError):
        save_shape_model(model_copy, tmp_path / "m.npz")
    assert not any(tmp_path.iterdir())
