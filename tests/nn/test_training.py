"""From a method's config entry to a trained model and predictions on the image grid, for every view
mode, with transfer learning and interactive rounds; and the rule scripts that run them."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mskseg.io.volumes import read_volume, write_volume
from mskseg.nn.fit import dice_and_nll, train_view
from mskseg.nn.method import MethodSpec
from mskseg.nn.model_info import ModelInfo, load_trained
from mskseg.nn.predict import predict_case, predict_view
from mskseg.nn.settings import InferenceSettings
from mskseg.nn.training import input_fingerprint, load_cases, run_training
from mskseg.nn.weightmap import WeightMapSettings, weight_map_volume
from mskseg.volume import Volume

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow_scripts"))

LABELS = {"bone": 1, "cartilage": 2}
SPACING = (1.0, 1.2, 1.5)
DIRECTION = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])  # not the identity


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def phantom(seed: int, shape=(20, 18, 14)) -> tuple[Volume, Volume]:
    """A bright ellipsoid 'bone' under a thin darker shell 'cartilage', in noise; position varies by seed."""
    rng = np.random.default_rng(seed)
    c = np.array(shape) / 2 + rng.uniform(-1.5, 1.5, 3)
    g = np.indices(shape).astype(float)
    r = np.sqrt((((g - c[:, None, None, None]) * np.array(SPACING)[:, None, None, None]) ** 2
                 / np.array([7.0, 6.0, 6.0])[:, None, None, None] ** 2).sum(0))
    labels = np.where(r < 1.0, 1, np.where(r < 1.3, 2, 0)).astype(np.uint8)
    image = np.select([labels == 1, labels == 2], [2.0, 1.0], 0.0) + rng.normal(0, 0.2, shape)
    return (Volume(image.astype(np.float32), SPACING, (5.0, -3.0, 2.0), DIRECTION),
            Volume(labels, SPACING, (5.0, -3.0, 2.0), DIRECTION))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    out = {"image": [], "mask": [], "weight": [], "poor": []}
    for i in range(5):
        image, mask = phantom(i)
        paths = {k: root / f"s{i}_{k}.nii.gz" for k in out}
        write_volume(image, paths["image"])
        write_volume(mask, paths["mask"])
        write_volume(weight_map_volume(mask, WeightMapSettings(w0=5, sigma_mm=2)), paths["weight"])
        poor = mask.array.copy()
        poor[poor == 2] = 1  # poor labels: cartilage labelled as bone
        write_volume(mask.with_array(poor), paths["poor"])
        for k in out:
            out[k].append(str(paths[k]))
    return out


def cases(files, idx, weight=False, poor=False):
    names = [f"s{i}" for i in idx]
    return load_cases(names, [files["image"][i] for i in idx],
                      [files["poor" if poor else "mask"][i] for i in idx],
                      [files["weight"][i] for i in idx] if weight else None, label_values=list(LABELS.values()))


def method(**entry):
    base = {"kind": "trained", "network": {"name": "unet2d", "base": 4, "depth": 2},
            "train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "seed": 3, "steps_per_epoch": 3}}
    base.update(entry)
    return MethodSpec.from_config("tiny", base, {"w": {}})


VIEWS = [
    ({}, "sagittal"),
    ({"view": "axial", "network": {"name": "unet25d", "base": 4, "depth": 2}, "n_slices": 3,
      "loss": "ce_distance", "weight_map": "w"}, "axial"),
    ({"view": "three_plane", "network": {"name": "segnet", "base": 4, "depth": 2}}, "coronal"),
    ({"view": "multiplanar", "multiplanar": {"n_views": 2, "dim": 16, "samples_per_epoch": 8}}, "mpr"),
    ({"view": "volume", "network": {"name": "unet3d", "base": 4, "depth": 2}, "patch": {"size": [8, 8, 8],
      "samples_per_case": 2}, "augment": {"elastic": 0.5, "rotation_deg": 10}}, "3d"),
]


@pytest.mark.parametrize("entry, view", VIEWS, ids=[v for _, v in VIEWS])
def test_each_view_trains_and_predicts_on_the_image_grid(files, tmp_path, entry, view) -> None:
    spec = method(**entry)
    weighted = spec.uses_weight_map()
    result, info = train_view(spec, view, cases(files, [0, 1], weighted), cases(files, [2], weighted),
                              list(LABELS.values()), tmp_path / "work")
    assert len(result.history) == result.epochs_run == 2 and result.best_weights.is_file()
    assert info.view == view and info.n_classes == 3
    test = cases(files, [3])[0]
    model = info.build()
    model.load_state_dict(torch.load(result.best_weights, weights_only=True))
    probs = predict_view(model, info, test, device=torch.device("cpu"))
    assert probs.shape == (3, *test.image.shape)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)


def test_sagittal_unet_learns_the_phantom(files, tmp_path) -> None:
    spec = method(train={"epochs": 8, "batch_size": 4, "lr": 0.02, "seed": 1}, loss="dice_ce",
                  network={"name": "unet2d", "base": 8, "depth": 2})
    result, info = train_view(spec, "sagittal", cases(files, [0, 1, 2]), cases(files, [3]), list(LABELS.values()),
                              tmp_path / "work")
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]
    model, info = load_trained(result.best_weights, _write_info(info, tmp_path), torch.device("cpu"))
    test = cases(files, [4])[0]
    probs = predict_case([(model, info)], test, weights=None, device=torch.device("cpu"), precision="fp32",
                         batch_size=8)
    bone = probs.argmax(0) == 1
    truth = test.target == 1
    assert 2 * (bone & truth).sum() / (bone.sum() + truth.sum()) > 0.9


def _write_info(info: ModelInfo, folder: Path) -> Path:
    path = folder / "model.json"
    info.write(path)
    return path


def test_model_info_round_trip_and_bad_file(tmp_path) -> None:
    info = ModelInfo("m", "sagittal", {"name": "unet2d", "base": 4, "depth": 2}, 3, [1, 2], slice_size=[16, 16])
    assert ModelInfo.read(_write_info(info, tmp_path)) == info
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.json"):
        ModelInfo.read(tmp_path / "bad.json")


def test_dice_and_nll() -> None:
    target = np.array([[[0, 1, 2, 2]]])
    perfect = np.eye(3)[target].transpose(3, 0, 1, 2).astype(np.float32)
    assert dice_and_nll(perfect, target) == (1.0, pytest.approx(0.0, abs=1e-6))
    wrong = np.roll(perfect, 1, axis=0)
    assert dice_and_nll(wrong, target)[0] == 0.0


def test_pretraining_then_interactive_rounds_log_collisions(files, tmp_path) -> None:
    spec = method(loss="weighted_ce", weight_map="w", pretrain={"train": {"epochs": 1, "batch_size": 4, "lr": 0.01,
                                                                          "monitor": "train_loss"}},
                  interactive={"rounds": [1, 2], "collision_eps_mm": 2.0})
    pre, _ = train_view(spec.pretraining(), "sagittal", cases(files, [0, 1, 2], poor=True), [],
                        list(LABELS.values()), tmp_path / "pre")
    result, _info, rounds, weights = run_training(spec, "sagittal", cases(files, [0, 1], weight=True),
                                                  cases(files, [2], weight=True), LABELS, tmp_path / "fine",
                                                  init_weights=pre.best_weights)
    assert list(rounds["round"]) == [1, 2] and list(rounds["n_train"]) == [1, 2]
    # exactly the declared numbers of accurate scans, the first n of the training subjects
    assert list(rounds["train_subjects"]) == ["s0", "s0 s1"]
    assert list(rounds["predicted"]) == ["s1", "s2"]  # round 1 predicts the subject round 2 adds
    assert (rounds["collisions"] >= 0).all() and rounds["dice"].between(0, 1).all()
    assert (tmp_path / "fine" / "round-2").is_dir() and result.best_weights.parent.name == "round-2"
    assert [w.parent.name for w in weights] == ["round-1", "round-2"] and weights[-1] == result.best_weights
    # the rounds before the last are kept in one file, round by round, bit for bit
    from mskseg.nn.transfer import read_round_weights, write_round_weights
    from mskseg.nn.weights import read_state_dict

    write_round_weights(weights, tmp_path / "rounds.pt")
    kept = read_round_weights(tmp_path / "rounds.pt")
    first = read_state_dict(weights[0])
    assert list(kept) == [1] and all(torch.equal(kept[1][k], v) for k, v in first.items())
    write_round_weights(weights, tmp_path / "again.pt")
    assert (tmp_path / "rounds.pt").read_bytes() == (tmp_path / "again.pt").read_bytes()
    write_round_weights(weights[-1:], tmp_path / "one.pt")
    assert read_round_weights(tmp_path / "one.pt") == {}


def test_train_fold_trains_from_a_cache_as_from_memory_and_deletes_it(files, tmp_path, caplog) -> None:
    import logging

    from mskseg.nn.training import ModelFiles, train_fold

    spec = method(view="axial", loss="ce_distance", weight_map="w", augment={"rotation_deg": 10, "contrast": 0.2},
                  train={"epochs": 3, "batch_size": 4, "lr": 0.01, "seed": 3, "steps_per_epoch": 3,
                         "validation": {"every_epochs": 2, "slices_per_volume": 5}})
    subjects = {"train": ["s0", "s1"], "val": ["s2"]}
    inputs = {f"{role}_{kind}": [files[kind][int(s[1])] for s in names]
              for role, names in subjects.items() for kind in ("image", "mask", "weight")}
    out = ModelFiles(model=tmp_path / "model.pt", info=tmp_path / "model.json", history=tmp_path / "history.csv")
    with caplog.at_level(logging.INFO):
        train_fold(spec, "axial", LABELS, subjects, inputs, tmp_path / "work", out)
    assert "2 of 2 subjects written" in caplog.text and "1 of 1 subjects written" in caplog.text
    assert not list((tmp_path / "work").glob("*/cache"))  # deleted once the model is exported
    history = pd.read_csv(out.history)
    assert history.loc[history["val_dice"].notna(), "epoch"].tolist() == [2, 3]
    # the same weights as a training on the volumes in memory
    memory, _ = train_view(spec, "axial", cases(files, [0, 1], weight=True), cases(files, [2], weight=True),
                           list(LABELS.values()), tmp_path / "memory")
    assert (tmp_path / "model.pt").read_bytes() == memory.best_weights.read_bytes()


def test_input_fingerprint_changes_with_files_and_settings(files, tmp_path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("1", encoding="utf-8")
    first = input_fingerprint([a], {"x": 1})
    assert first == input_fingerprint([a], {"x": 1}) != input_fingerprint([a], {"x": 2})
    a.write_text("22", encoding="utf-8")
    assert input_fingerprint([a], {"x": 1}) != first


def test_resume_is_decided_by_the_inputs_content_not_their_times(tmp_path) -> None:
    import os
    import shutil

    from mskseg.io.checksums import Digests

    a = tmp_path / "a.nii.gz"
    a.write_bytes(b"some volume")
    store = tmp_path / "work" / "digests.json"
    first = input_fingerprint([a], {"x": 1}, Digests(store))
    os.utime(a, ns=(1, 1))  # touched
    touched = Digests(store)
    assert input_fingerprint([a], {"x": 1}, touched) == first and touched.read == 1  # read again: same content
    cached = Digests(store)
    assert input_fingerprint([a], {"x": 1}, cached) == first and cached.read == 0  # unchanged: not read again
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(a, copy / "a.nii.gz")  # copied: another path and modification time
    assert input_fingerprint([copy / "a.nii.gz"], {"x": 1}, Digests(store)) == first
    a.write_bytes(b"some volumE")
    assert input_fingerprint([a], {"x": 1}, cached) != first and cached.read == 1


def test_rule_scripts_train_fuse_and_predict(files, tmp_path) -> None:
    import fit_fusion
    import predict_subject
    import train_model

    from mskseg.workflow.segmentation import method_from_params

    entry = {"kind": "trained", "view": "three_plane", "network": {"name": "unet2d", "base": 4, "depth": 2},
             "train": {"epochs": 1, "batch_size": 4, "lr": 0.01, "steps_per_epoch": 2}}
    settings = {"method": entry, "labels": LABELS, "weight_map": None}
    spec, labels = method_from_params("tiny", settings)  # the rule's params, as the script reads them
    assert labels == LABELS and spec.view == "three_plane"
    subjects = {"train": ["s0", "s1"], "val": ["s2"]}
    inputs = {"train_image": files["image"][:2], "train_mask": files["mask"][:2], "val_image": files["image"][2:3],
              "val_mask": files["mask"][2:3]}
    models, infos = [], []
    for view in ("axial", "coronal", "sagittal"):
        out = {k: tmp_path / f"{view}_{k}" for k in ("model.pt", "model.json", "history.csv", "curve.png",
                                                     "rounds.csv")}
        train_model.main(spec=spec, labels=LABELS, view=view, fold="0", subjects=subjects, files=inputs,
                         workdir=tmp_path / "work" / view, model=out["model.pt"], info=out["model.json"],
                         history=out["history.csv"], curve=out["curve.png"], rounds=out["rounds.csv"],
                         log=tmp_path / f"{view}.log")
        assert all(p.is_file() for p in out.values())
        assert list(pd.read_csv(out["history.csv"])["epoch"]) == [1]
        models.append(out["model.pt"])
        infos.append(out["model.json"])
    fit_fusion.main(spec=spec, labels=LABELS, images=files["image"][2:3], masks=files["mask"][2:3],
                    models=models, infos=infos, weights=tmp_path / "fusion.json", grid=tmp_path / "grid.csv",
                    log=tmp_path / "fusion.log")
    weights = json.loads((tmp_path / "fusion.json").read_text(encoding="utf-8"))["views"]
    assert set(weights) == {"axial", "coronal", "sagittal"} and sum(weights.values()) == pytest.approx(1.0)
    pred = tmp_path / "pred.nii.gz"
    predict_subject.main(subject="s4", image=Path(files["image"][4]), models=models, infos=infos,
                         settings=InferenceSettings(batch_size=8), labels=LABELS, prediction=pred,
                         record=tmp_path / "pred.json",
                         fusion=tmp_path / "fusion.json", log=tmp_path / "pred.log")
    image, labels = read_volume(files["image"][4]), read_volume(pred)
    assert not image.geometry_mismatches(labels)
    assert set(np.unique(labels.array)) <= {0, 1, 2}
    record = json.loads((tmp_path / "pred.json").read_text(encoding="utf-8"))
    assert record["fusion_weights"] == weights and record["seconds"] >= 0
    # post-processing opted in: the raw label map through the dataset's steps, each step's voxels recorded
    from mskseg.postprocess import PostprocessSettings, postprocess_labels

    steps = PostprocessSettings(keep_components={1: 1}, fill_holes=True)
    cleaned = tmp_path / "pred_pp.nii.gz"
    predict_subject.main(subject="s4", image=Path(files["image"][4]), models=models, infos=infos,
                         settings=InferenceSettings(batch_size=8), labels=LABELS, prediction=cleaned,
                         record=tmp_path / "pred_pp.json", fusion=tmp_path / "fusion.json", postprocess=steps,
                         probabilities=tmp_path / "probs.npz", log=tmp_path / "pred_pp.log")
    expected, changes = postprocess_labels(labels.array, list(LABELS.values()), spacing=labels.spacing,
                                           settings=steps)
    from mskseg.io.probabilities import read_probabilities

    probs, grid, values = read_probabilities(tmp_path / "probs.npz")  # kept before the post-processing
    assert values == list(LABELS.values()) and not grid.geometry_mismatches(labels)
    differ = probs.argmax(axis=0) != np.searchsorted([0, *values], labels.array)
    top2 = np.sort(probs, axis=0)[-2:]
    assert (top2[1] - top2[0])[differ].max(initial=0.0) <= 1 / 255 + 1e-6  # only near-ties flip (quantisation)
    np.testing.assert_array_equal(read_volume(cleaned).array, expected)
    record = json.loads((tmp_path / "pred_pp.json").read_text(encoding="utf-8"))
    assert [r["step"] for r in record["postprocess"]] == [r["step"] for c in changes for r in c.rows()]
    assert {r["step"] for r in record["postprocess"]} == {c.step for c in changes} and len(changes) == 2
    assert "post-processing" in (tmp_path / "pred_pp.log").read_text(encoding="utf-8")


def test_probabilities_are_kept_quantised(tmp_path) -> None:
    from mskseg.io.probabilities import read_probabilities, write_probabilities
    from mskseg.volume import Volume

    rng = np.random.default_rng(0)
    raw = rng.random((3, 4, 5, 6))
    probs = raw / raw.sum(axis=0)
    probs[:, 0, 0, 0] = [1.0 + 1e-7, 0.0, 0.0]  # a float sum a hair above 1 is clipped
    grid = Volume(np.zeros((4, 5, 6), np.uint8), (0.5, 0.6, 2.0), (1.0, -2.0, 3.0), np.diag([1.0, -1.0, -1.0]))
    path = tmp_path / "p.npz"
    write_probabilities(probs, grid, [3, 7], path)
    back, back_grid, values = read_probabilities(path)
    assert values == [3, 7] and back.dtype == np.float32
    assert np.abs(back - np.clip(probs, 0, 1)).max() <= 1 / 510 + 1e-7
    assert np.load(path)["probs"].dtype == np.uint8
    assert not back_grid.geometry_mismatches(grid)
    bad = probs.copy()
    bad[1, 1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"p2\.npz: the probabilities hold NaN"):
        write_probabilities(bad, grid, [3, 7], tmp_path / "p2.npz")
    with pytest.raises(ValueError, match="3 classes for 1 labels"):
        write_probabilities(probs, grid, [3], tmp_path / "p3.npz")
    assert not (tmp_path / "p2.npz").exists() and not (tmp_path / "p3.npz").exists()


def test_every_round_before_the_last_is_scored_on_the_test_subjects(files, tmp_path) -> None:
    """train_fold exports round 1's weights; evaluate_rounds scores them as a direct prediction would."""
    from mskseg.metrics.evaluate import EvaluationSettings
    from mskseg.nn.model_info import load_trained
    from mskseg.nn.predict import predict_case
    from mskseg.nn.round_eval import evaluate_rounds
    from mskseg.nn.settings import InferenceSettings
    from mskseg.nn.training import ModelFiles, train_fold
    from mskseg.nn.transfer import read_round_weights

    spec = method(interactive={"rounds": [1, 2], "collision_eps_mm": 2.0})
    subjects = {"train": ["s0", "s1"], "val": ["s2"]}
    inputs = {f"{role}_{kind}": [files[kind][int(s[1])] for s in names]
              for role, names in subjects.items() for kind in ("image", "mask")}
    out = ModelFiles(model=tmp_path / "model.pt", info=tmp_path / "model.json", history=tmp_path / "history.csv",
                     rounds=tmp_path / "rounds.csv", round_weights=tmp_path / "rounds.pt")
    train_fold(spec, "sagittal", LABELS, subjects, inputs, tmp_path / "work", out)
    rounds = pd.read_csv(out.rounds)
    scores = evaluate_rounds(rounds, out.round_weights, out.model, out.info, ["s3", "s4"], files["image"][3:5],
                             files["mask"][3:5], inference=InferenceSettings(), labels=LABELS,
                             evaluation=EvaluationSettings(gap_eps_mm=None, collision_eps_mm=None))
    assert set(scores["round"]) == {1} and set(scores["n_train"]) == {1}  # round 2 is the model itself
    assert list(scores.loc[scores["structure"] == "all", "subject"]) == ["s3", "s4"]
    # brute force: round 1's weights predict s3, Dice of the bone by counting
    model, info = load_trained(out.model, out.info, torch.device("cpu"))
    model.load_state_dict(read_round_weights(out.round_weights)[1])
    case = cases(files, [3])[0]
    pred = predict_case([(model, info)], case, weights=None, device=torch.device("cpu"), precision="fp32",
                        batch_size=InferenceSettings().batch_size).argmax(0)
    p, t = pred == 1, case.target == 1
    bone = scores.loc[(scores["subject"] == "s3") & (scores["structure"] == "bone"), "dice"].item()
    assert bone == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()), abs=1e-6)
    torch.save({}, tmp_path / "none.pt")  # a rounds file without round 1
    with pytest.raises(ValueError, match="round 1 has no weights"):
        evaluate_rounds(rounds, tmp_path / "none.pt", out.model, out.info, ["s3"], files["image"][3:4],
                        files["mask"][3:4], inference=InferenceSettings(), labels=LABELS,
                        evaluation=EvaluationSettings())
