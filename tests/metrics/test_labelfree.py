"""Label-free QC on small knee phantoms: a good segmentation passes, planted failures are flagged with a reason.

The femur's shape model is built as the shape stage builds one (``select_reference`` ->
``reference_landmarks`` -> ``register_structure`` + ``warp_landmarks`` -> ``shape_model``) from five
phantoms at a coarse working spacing (3 mm, two demons levels), so the registrations take a few seconds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from mskseg.io.volumes import to_sitk
from mskseg.landmarks.correspondence import carry_to_subject, sample_reference
from mskseg.metrics.labelfree import (
    SD_FLOOR_FRACTION,
    LabelFreeThresholds,
    VolumeReference,
    flag_segmentation,
    pair_collisions,
    qc_table,
    scan_metrics,
    structure_volumes,
    volume_zscores,
)
from mskseg.metrics.shape_plausibility import SHAPE_KEYS, model_fit, shape_plausibility
from mskseg.registration.masks import mirror_volume, structure_mask
from mskseg.registration.pipeline import RegistrationSettings, register_to_reference
from mskseg.registration.reference import choose_reference
from mskseg.shape.pca import fit_shape_model
from mskseg.synthetic import generate_subject
from mskseg.volume import Volume
from tests.metrics.brute import label_map

LABELS = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}
#: the dataset's ``shape`` block as the rules see it (coarse, for speed)
SHAPE = {"labels": LABELS, "working_spacing_mm": 3.0, "margin_mm": 5.0, "selection_spacing_mm": 4.0,
         "demons": {"shrink_factors": [2, 1], "iterations": [30, 20]}}
TRAIN = range(5)
PAIRS = [("femur", "tibia")]
#: on (3.2, 2.5, 2.5) mm voxels eps must reach a face neighbour to count touching bones
EPS_MM = 3.3


@pytest.fixture(scope="module")
def cohort() -> dict:
    subjects = [generate_subject("knee", i, seed=3, shape=(32, 56, 56), spacing=(3.2, 2.5, 2.5), n_landmarks=4)
                for i in range(7)]
    masks = {f"k{i}": s.mask for i, s in enumerate(subjects)}
    train = {k: masks[k] for k in list(masks)[: len(TRAIN)]}
    choice = choose_reference(train, [("femur", False)], LABELS, selection_spacing_mm=4.0, working_spacing_mm=3.0,
                              margin_mm=5.0, read=lambda v: v)
    landmarks = sample_reference(choice.mask, 60, seed=0)
    fixed = sitk.Cast(to_sitk(choice.working), sitk.sitkFloat32)
    settings = RegistrationSettings.from_dict(SHAPE)
    shapes = []
    for mask in train.values():
        result = register_to_reference(fixed, structure_mask(mask, 1), settings)
        assert result.converged
        shapes.append(carry_to_subject(landmarks, result.affine, result.field, mirrored=False))
    model = fit_shape_model(np.stack(shapes), list(train), scale=True)
    volumes = VolumeReference.from_volumes([structure_volumes(m, LABELS) for m in train.values()])
    return {"masks": masks, "reference": choice.mask, "landmarks": landmarks, "model": model, "volumes": volumes}


def _shape(cohort: dict, mask: Volume, **kw) -> dict:
    args = {"reference_mask": cohort["reference"], "reference_landmarks": cohort["landmarks"],
            "model": cohort["model"], "registration_settings": SHAPE, "name": "femur", **kw}
    return shape_plausibility(mask, 1, **args)


def _row(cohort: dict, subject: str, mask: Volume, shape: dict | None = None) -> dict:
    return scan_metrics(subject, mask, LABELS, volume_reference=cohort["volumes"], collision_pairs=PAIRS,
                        collision_eps_mm=EPS_MM, shapes={"femur": shape or _shape(cohort, mask)})


def _edit(mask: Volume, change) -> Volume:
    arr = np.asarray(mask.array).copy()
    change(arr)
    return mask.with_array(arr)


def _cut_femur(arr: np.ndarray) -> None:
    """Half the femur's voxels (those beyond its median index along array axis 1) set to background."""
    idx = np.argwhere(arr == 1)
    drop = idx[idx[:, 1] > np.median(idx[:, 1])]
    arr[tuple(drop.T)] = 0


def _drop_femur(arr: np.ndarray) -> None:
    arr[arr == 1] = 0


@pytest.fixture(scope="module")
def good(cohort: dict) -> dict:
    return _row(cohort, "k5", cohort["masks"]["k5"])


@pytest.fixture(scope="module")
def cut(cohort: dict) -> dict:
    return _row(cohort, "k5-cut", _edit(cohort["masks"]["k5"], _cut_femur))


# ---- the three planted cases ------------------------------------------------------------------------------
def test_a_good_segmentation_passes_without_reasons(good: dict) -> None:
    assert flag_segmentation(good) == []
    assert good["femur.converged"] is True and good["femur.reason"] == "" and good["femur.n_modes"] == 4
    assert 0 < good["femur.mahalanobis"] < LabelFreeThresholds().mahalanobis_limit(4)
    assert 0 < good["femur.residual_mean_mm"] < good["femur.residual_max_mm"] < 5.0
    assert good["collisions.femur.tibia"] == 0
    assert all(abs(good[f"{s}.volume_z"]) < 3 for s in LABELS)


def test_a_femur_cut_in_half_is_flagged_by_volume_and_by_shape(good: dict, cut: dict) -> None:
    reasons = flag_segmentation(cut)
    assert cut["femur.volume_mm3"] == pytest.approx(0.5 * good["femur.volume_mm3"], rel=0.1)
    assert any(r.startswith("femur volume z = -") and r.endswith("(|z| > 3)") for r in reasons), reasons
    shape = [r for r in reasons if r.startswith("femur shape:")]
    assert shape and all("not assessed" not in r for r in shape), reasons  # assessed, and implausible
    assert cut["femur.converged"] is True
    assert cut["femur.mahalanobis"] > 2 * good["femur.mahalanobis"] or cut["femur.residual_mean_mm"] > 2.0
    assert cut["femur.residual_mean_mm"] > 3 * good["femur.residual_mean_mm"]
    assert not any(r.startswith("tibia") or "collisions" in r for r in reasons)


def test_an_empty_structure_gives_nan_and_a_reason_not_an_exception(cohort: dict) -> None:
    empty = _edit(cohort["masks"]["k5"], _drop_femur)
    shape = _shape(cohort, empty)
    assert list(shape) == list(SHAPE_KEYS)
    assert all(math.isnan(shape[k]) for k in ("mahalanobis", "residual_mean_mm", "residual_max_mm",
                                              "registration_dice"))
    assert shape["converged"] is False and shape["reason"] == "femur is empty"
    row = _row(cohort, "k5-empty", empty, shape)
    assert row["femur.volume_mm3"] == 0.0
    reasons = flag_segmentation(row)
    assert "femur shape: not assessed (femur is empty)" in reasons
    assert any(r.startswith("femur volume z = -") for r in reasons)
    quiet = flag_segmentation(row, LabelFreeThresholds(flag_unassessed=False))
    assert quiet and not any(r.startswith("femur shape") for r in quiet)


def test_a_registration_that_does_not_converge_gives_nan_and_its_reason(cohort: dict) -> None:
    strict = {**SHAPE, "min_dice": 0.9999}
    shape = _shape(cohort, cohort["masks"]["k6"], registration_settings=strict)
    assert shape["converged"] is False and 0.9 < shape["registration_dice"] < 0.9999
    assert math.isnan(shape["mahalanobis"]) and math.isnan(shape["residual_mean_mm"])
    assert shape["reason"].startswith("registration did not converge: Dice after warping")


def test_a_mirrored_member_is_scored_in_the_model_frame(cohort: dict, good: dict) -> None:
    """The mask reflected into the other side's world, scored with ``mirrored=True``: the same numbers."""
    shape = _shape(cohort, mirror_volume(cohort["masks"]["k5"]), mirrored=True)
    for key in ("mahalanobis", "residual_mean_mm", "residual_max_mm", "registration_dice"):
        assert shape[key] == pytest.approx(good[f"femur.{key}"], rel=1e-6, abs=1e-9), key


def test_landmarks_that_do_not_fit_the_model_raise(cohort: dict) -> None:
    with pytest.raises(ValueError, match="60 points"):
        _shape(cohort, cohort["masks"]["k5"], reference_landmarks=cohort["landmarks"][:10])


def test_model_fit_of_training_shapes_and_of_the_mean(cohort: dict) -> None:
    model = cohort["model"]
    shapes = model.aligned_training_shapes()
    fits = [model_fit(s, model) for s in shapes]
    expected = np.sqrt(((model.coefficients / model.sd) ** 2).sum(axis=1))
    # project() rescales onto the mean by least squares, not as Procrustes did: close, not equal
    assert [f["mahalanobis"] for f in fits] == pytest.approx(expected, rel=0.05)
    assert max(f["residual_max_mm"] for f in fits) < 0.25  # in the span up to that rescaling
    mean = model_fit(model.mean * 1.3 + 7.0, model)  # pose and size do not matter
    assert mean["mahalanobis"] == pytest.approx(0.0, abs=1e-6) and mean["residual_max_mm"] < 1e-6


# ---- volumes ----------------------------------------------------------------------------------------------
def _brute_volume(mask: Volume, value: int) -> float:
    values, counts = np.unique(np.asarray(mask.array), return_counts=True)
    voxel = mask.spacing[0] * mask.spacing[1] * mask.spacing[2]
    return float(dict(zip(values.tolist(), counts.tolist(), strict=True)).get(value, 0)) * voxel


def test_volume_zscores_match_a_brute_force_computation(cohort: dict) -> None:
    masks = cohort["masks"]
    train = [masks[f"k{i}"] for i in TRAIN]
    ref = cohort["volumes"]
    for name, value in LABELS.items():
        v = np.array([_brute_volume(m, value) for m in train])
        mean, sd = v.sum() / len(v), math.sqrt(((v - v.mean()) ** 2).sum() / (len(v) - 1))
        assert (ref.mean[name], ref.sd[name], ref.n[name]) == (pytest.approx(mean), pytest.approx(sd), 5)
        for mask in (masks["k5"], masks["k6"], _edit(masks["k5"], _cut_femur)):
            z = volume_zscores(structure_volumes(mask, LABELS), ref)[name]
            assert z == pytest.approx((_brute_volume(mask, value) - mean) / max(sd, SD_FLOOR_FRACTION * mean))


def test_volume_reference_floors_the_sd_and_round_trips_through_json() -> None:
    same = VolumeReference.from_volumes([{"femur": 1000.0, "tibia": 0.0}] * 4 + [{"femur": float("nan")}])
    assert same.n == {"femur": 4, "tibia": 4} and same.sd == {"femur": 0.0, "tibia": 0.0}
    assert same.scale("femur") == pytest.approx(20.0) and same.scale("tibia") == 1.0  # 2 % of the mean; 1 mm^3
    z = volume_zscores({"femur": 1100.0, "tibia": 3.0, "patella": 5.0}, same)
    assert z["femur"] == pytest.approx(5.0) and z["tibia"] == pytest.approx(3.0) and math.isnan(z["patella"])
    one = VolumeReference.from_volumes([{"femur": 500.0}])
    assert one.sd["femur"] == 0.0 and one.scale("femur") == pytest.approx(10.0)
    back = VolumeReference.from_dict(json.loads(json.dumps(same.to_dict(), allow_nan=False)))
    assert back == same
    with pytest.raises(ValueError, match="units"):
        VolumeReference.from_dict({**same.to_dict(), "units": "ml"})
    with pytest.raises(ValueError):
        VolumeReference(mean={"femur": 1.0}, sd={"femur": 1.0}, n={"femur": 0})


# ---- collisions -------------------------------------------------------------------------------------------
def _brute_pair(arr: np.ndarray, spacing, a: int, b: int, eps: float) -> int:
    n = 0
    for x, y in ((a, b), (b, a)):
        if (arr == y).any():
            d = ndimage.distance_transform_edt(arr != y, sampling=spacing)
            n += int(np.count_nonzero((arr == x) & (d <= eps + 1e-9)))
    return n


def test_bones_made_to_touch_are_flagged_with_their_collision_count(cohort: dict, good: dict) -> None:
    def bridge(arr: np.ndarray) -> None:
        arr[(arr == 2) | (arr == 4)] = 1  # both cartilages become femur: it reaches the tibia

    touching = _edit(cohort["masks"]["k5"], bridge)
    row = scan_metrics("k5-touch", touching, LABELS, volume_reference=cohort["volumes"], collision_pairs=PAIRS,
                       collision_eps_mm=EPS_MM)
    n = row["collisions.femur.tibia"]
    assert n == _brute_pair(np.asarray(touching.array), touching.spacing, 1, 3, EPS_MM) > 0
    assert f"collisions |E| = {n} between femur and tibia" in flag_segmentation(row)
    assert not any("collisions" in r for r in flag_segmentation(good))


@pytest.mark.parametrize("eps", [0.5, 1.3, 2.0, 3.1])
def test_pair_collisions_match_distance_transforms(eps: float) -> None:
    spacing = (0.7, 0.3646, 1.3)
    arr = label_map(4)
    labels = {"femur": 1, "tibia": 2, "patella": 3, "fibula": 4}
    found = pair_collisions(Volume(arr, spacing), labels, eps_mm=eps)
    assert len(found) == 6
    for (a, b), n in found.items():
        assert n == _brute_pair(arr, spacing, labels[a], labels[b], eps), (a, b)
    without = pair_collisions(Volume(np.where(arr == 2, 0, arr), spacing), labels, [("femur", "tibia")], eps)
    assert without == {("femur", "tibia"): 0}
    with pytest.raises(ValueError, match="unknown structures"):
        pair_collisions(Volume(arr, spacing), labels, [("femur", "ulna")])


# ---- thresholds and the table -----------------------------------------------------------------------------
def test_default_mahalanobis_limit_is_the_chi_quantile() -> None:
    t = LabelFreeThresholds()
    assert t.mahalanobis_limit(4) == pytest.approx(4.2973, abs=1e-3)  # sqrt(chi2.ppf(0.999, 4)) = sqrt(18.467)
    assert t.mahalanobis_limit(10) == pytest.approx(5.4395, abs=1e-3)
    assert t.mahalanobis_limit(0) == 0.0
    assert LabelFreeThresholds(mahalanobis=9.0).mahalanobis_limit(4) == 9.0
    with pytest.raises(ValueError):
        LabelFreeThresholds(mahalanobis_quantile=1.0)


def test_reasons_read_as_sentences() -> None:
    row = {"subject": "s1", "femur.volume_z": -6.24, "tibia.volume_z": float("nan"), "tibia.mahalanobis": 9.12,
           "tibia.n_modes": 4, "tibia.residual_mean_mm": 1.0, "tibia.reason": "",
           "collisions.femur_left.hip_left": 120, "collisions.femur_left.sacrum": 0}
    assert flag_segmentation(row) == ["femur volume z = -6.2 (|z| > 3)", "tibia shape: Mahalanobis 9.1 > 4.3",
                                      "collisions |E| = 120 between femur_left and hip_left"]
    loose = LabelFreeThresholds(volume_z=None, mahalanobis=10.0, collisions=500, residual_mean_mm=0.5)
    assert flag_segmentation(row, loose) == ["tibia shape: residual mean 1.0 mm > 0.5 mm"]


def test_qc_table_has_one_row_per_scan_with_flags_and_reasons(good: dict, cut: dict) -> None:
    table = qc_table([good, cut])
    assert table["subject"].tolist() == ["k5", "k5-cut"]
    assert table["flagged"].tolist() == [False, True] and table["flagged"].dtype == bool
    assert table.loc[0, "reasons"] == ""
    assert table.loc[1, "reasons"] == "; ".join(flag_segmentation(cut))
    assert {"femur.volume_z", "femur.mahalanobis", "femur.residual_mean_mm", "collisions.femur.tibia"} <= set(
        table.columns)
    assert list(qc_table([]).columns) == ["subject", "flagged", "reasons"]
