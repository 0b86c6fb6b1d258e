"""The shape fitting on one volume (:func:`mskseg.nn.shape_fitting.fit_volume`) and its training crops.

A pre-segmentation that returns the true mask (an oracle, patched in) makes the expected results exact:
2D + 3D probabilities with an exact 2D part give the truth whatever the 3D network says; without
ensembling the 3D network decides every covered voxel; the fitted landmarks are the regression
network's on the true box's crop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mskseg.nn.shape_fitting as fitting
from mskseg.nn.model_info import ModelInfo
from mskseg.nn.models import build_model
from mskseg.nn.shape_crop import crop_geometry, mask_bbox, resample_crop
from mskseg.nn.shape_fitting import FittingModels, fit_volume
from mskseg.nn.shape_fitting_train import RegressionInfo, regression_crops, select_landmarks
from mskseg.nn.shape_method import ShapeFittingSpec
from mskseg.nn.shape_regression import build_shape_regression, predict_landmarks, to_world
from mskseg.shape.pca import fit_shape_model
from mskseg.synthetic import generate_subject

LABELS = [1, 2, 3, 4]
DATASET = {"labels": {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4},
           "cartilage": ["femoral_cartilage", "tibial_cartilage"],
           "methods": {"unet2d": {"kind": "trained", "view": "sagittal"}}}


def _subjects(n: int = 3):
    return [generate_subject("knee", i, seed=1, shape=(24, 40, 40), spacing=(4.0, 3.0, 3.0), n_landmarks=50)
            for i in range(n)]


def _points(subject, bone: str) -> np.ndarray:
    lm = subject.landmarks
    return lm[lm["structure"] == bone].sort_values("index")[["x", "y", "z"]].to_numpy(dtype=float)


@pytest.fixture(scope="module")
def setup():
    subjects = _subjects()
    spec = ShapeFittingSpec.from_config("fit", {
        "kind": "shape_fitting", "presegmentation": "unet2d", "regression": {"cube_size": 16, "base_features": 4},
        "landmarks": {"counts": {"femur": 6, "tibia": 3}},
        "refinement": {"network": {"name": "unet3d", "base": 4, "depth": 2}, "patch": {"size": [8, 8, 8]}}},
        DATASET, {"femur": [("femur", False)], "tibia": [("tibia", False)]})
    regressions = []
    rotation = subjects[0].image.direction.T
    for bone, value in (("femur", 1), ("tibia", 3)):
        model = fit_shape_model(np.stack([_points(s, bone) for s in subjects]), [str(i) for i in range(3)])
        net = build_shape_regression(model, spec.regression, rotation=rotation, half_extent_mm=40.0).eval()
        info = RegressionInfo(part=bone, bones=[bone], label_values=[value], rotation=rotation.tolist(),
                              half_extent_mm=[40.0] * 3, settings=spec.regression.to_dict(), train_subjects=[],
                              val_subjects=[])
        regressions.append((net, info))
    torch.manual_seed(0)
    local = build_model("unet3d", in_channels=1, n_classes=5, base=4, depth=2).eval()
    local_info = ModelInfo(method="fit", view="3d", network={"name": "unet3d"}, n_classes=5, label_values=LABELS,
                           patch_size=[8, 8, 8])
    pre_info = ModelInfo(method="unet2d", view="sagittal", network={"name": "unet2d"}, n_classes=5,
                         label_values=LABELS)
    models = FittingModels(presegmentation=(nn.Identity(), pre_info), regressions=regressions,
                           refinement=(local, local_info),
                           selection={"femur": np.array([0, 5, 10, 20, 30, 40]), "tibia": np.array([1, 2, 3])})
    return subjects[0], spec, models


@pytest.fixture
def oracle(monkeypatch, setup):
    """The pre-segmentation returns the one-hot truth of the subject."""
    subject = setup[0]
    truth = torch.from_numpy(np.asarray(subject.mask.array).astype(np.int64))

    def one_hot(model, image, axis, **kwargs):
        return torch.nn.functional.one_hot(truth, 5).permute(3, 0, 1, 2).float().to(image.device)
    monkeypatch.setattr(fitting, "slice_probabilities", one_hot)
    return truth.numpy()


def test_the_steps_run_with_a_real_3d_network_and_are_timed(setup, oracle):
    subject, spec, models = setup
    result = fit_volume(models, subject.image, spec, LABELS)
    assert result.labels.shape == oracle.shape and set(np.unique(result.labels)) <= {0, *LABELS}
    assert set(result.seconds) == {"to_device", "presegmentation", "boxes", "crops", "shape_fit", "refinement",
                                   "ensemble", "to_host"}
    assert {b: p.shape for b, p in result.landmarks.items()} == {"femur": (50, 3), "tibia": (50, 3)}


def test_the_fitted_landmarks_are_the_networks_on_the_true_boxes_crop(setup, oracle):
    subject, spec, models = setup
    result = fit_volume(models, subject.image, spec, LABELS)
    image = np.asarray(subject.image.array, dtype=np.float32)
    for (net, info), bone in zip(models.regressions, ("femur", "tibia"), strict=True):
        geometry = crop_geometry(image.shape, subject.image.spacing, subject.image.origin, subject.image.direction,
                                 mask_bbox(oracle == info.label_values[0]), margin_mm=spec.regression.margin_mm,
                                 cube_size=16)
        expected = predict_landmarks(net, resample_crop(image, geometry), geometry)[0].numpy()
        np.testing.assert_allclose(result.landmarks[bone], expected, atol=1e-6)


class _Background(nn.Module):
    """A 3D network that calls every voxel background."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros((x.shape[0], 5, *x.shape[2:]))
        logits[:, 0] = 10.0
        return logits


def _with_background(models: FittingModels) -> FittingModels:
    return FittingModels(presegmentation=models.presegmentation, regressions=models.regressions,
                         refinement=(_Background(), models.refinement[1]), selection=models.selection)


def test_an_exact_presegmentation_outvotes_a_3d_network_wrong_everywhere(setup, oracle):
    subject, spec, models = setup
    np.testing.assert_array_equal(fit_volume(_with_background(models), subject.image, spec, LABELS).labels, oracle)


def test_without_ensembling_the_3d_network_decides_the_covered_voxels(setup, oracle):
    subject, spec, models = setup
    alone = ShapeFittingSpec(**{**spec.__dict__, "ensemble": False})
    result = fit_volume(_with_background(models), subject.image, alone, LABELS)
    changed = result.labels != oracle
    assert changed.sum() > 0 and (result.labels[changed] == 0).all()
    # every changed voxel lies in a patch centred on a selected landmark of the fitted shapes
    centres = np.concatenate([np.floor(subject.image.world_to_index(result.landmarks[b][idx]) + 0.5)
                              for b, idx in models.selection.items()])
    half = np.array([4, 4, 4])
    inside = np.zeros(oracle.shape, bool)
    for c in centres.astype(int):
        lo = np.clip(c - half, 0, np.array(oracle.shape) - 8)
        inside[lo[0]:lo[0] + 8, lo[1]:lo[1] + 8, lo[2]:lo[2] + 8] = True
    assert not (changed & ~inside).any()


def test_training_crops_carry_the_landmarks_exactly_and_jitter_the_box():
    subject = _subjects(1)[0]
    spec = ShapeFittingSpec.from_config("fit", {"kind": "shape_fitting", "presegmentation": "unet2d",
                                                "regression": {"cube_size": 12}, "crop_jitter_mm": 6.0},
                                        DATASET, {"femur": [("femur", False)], "tibia": [("tibia", False)]})
    points = _points(subject, "femur")
    samples = regression_crops(subject.image, subject.mask, [1], [points], spec, n_crops=4,
                               rng=np.random.default_rng(0))
    box = mask_bbox(np.asarray(subject.mask.array) == 1)
    exact = crop_geometry(subject.image.shape, subject.image.spacing, subject.image.origin, subject.image.direction,
                          box, margin_mm=spec.regression.margin_mm, cube_size=12)
    np.testing.assert_allclose(samples[0]["half_extent_mm"].numpy(), exact.half_extent_mm)
    for sample in samples:
        assert sample["image"].shape == (1, 12, 12, 12)
    world = to_world(samples[0]["target"], exact).numpy()
    np.testing.assert_allclose(world, points, atol=1e-4)
    extents = {tuple(np.round(s["half_extent_mm"].numpy(), 6)) for s in samples}
    assert len(extents) > 1  # the jittered boxes differ


def test_landmark_selection_keeps_the_region_and_fails_clearly_without_one():
    mean = np.stack([np.arange(20.0), np.zeros(20), np.zeros(20)], axis=1)
    votes = np.zeros((3, 20), bool)
    votes[:2, 5:15] = True  # in the region for 2 of 3 subjects
    picked = select_landmarks(mean, votes, 4, min_fraction=0.5)
    assert len(picked.indices) == 4 and set(picked.indices) <= set(range(5, 15))
    assert picked.radius_mm >= 2.0  # 4 of 10 points 1 mm apart, greedily from the centre: 9, 14, 5, 7
    with pytest.raises(ValueError, match="within_mm"):
        select_landmarks(mean, votes, 4, min_fraction=1.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_every_step_runs_there_and_gives_the_cpus_result(setup, oracle):
    subject, spec, models = setup
    cuda = torch.device("cuda")
    background = _with_background(models)
    on_gpu = FittingModels(presegmentation=background.presegmentation,
                           regressions=[(net.to(cuda), info) for net, info in background.regressions],
                           refinement=(background.refinement[0].to(cuda), background.refinement[1]),
                           selection=background.selection, device=cuda)
    try:
        gpu = fit_volume(on_gpu, subject.image, spec, LABELS)
    finally:
        for net, _ in models.regressions:
            net.cpu()
    np.testing.assert_array_equal(gpu.labels, oracle)
    cpu = fit_volume(background, subject.image, spec, LABELS)
    for bone in cpu.landmarks:
        np.testing.assert_allclose(gpu.landmarks[bone], cpu.landmarks[bone], atol=1e-3)
