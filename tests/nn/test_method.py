"""MethodSpec: a trained method's config entry, its defaults and the checks between its parts."""

import pytest

from mskseg.errors import ConfigError
from mskseg.nn.method import MethodSpec, input_multiple, interactive_split, views_of
from mskseg.nn.settings import InteractiveSettings, TrainSettings


def spec(**entry):
    return MethodSpec.from_config("m", {"kind": "trained", **entry}, {"plain": {}})


def test_defaults_are_a_sagittal_2d_unet_with_dice_ce() -> None:
    s = spec()
    assert (s.network["name"], s.view, s.loss, s.n_slices) == ("unet2d", "sagittal", "dice_ce", 1)
    assert s.views == ["sagittal"]
    assert s.multiple == 16 and s.pretrain is None and s.interactive is None
    assert s.inference.device == "auto" and s.multiplanar.n_views == 6 and s.train == TrainSettings()


@pytest.mark.parametrize("view, views", [("axial", ["axial"]), ("three_plane", ["axial", "coronal", "sagittal"]),
                                         ("multiplanar", ["mpr"])])
def test_views_of_each_mode(view, views) -> None:
    assert spec(view=view).views == views == views_of(view)


def test_volume_goes_with_unet3d_only() -> None:
    s = spec(view="volume", network={"name": "unet3d", "depth": 2}, patch={"size": [16, 32, 32]})
    assert s.views == ["3d"] and s.patch.size == (16, 32, 32) and s.patch.overlap == 0.5
    with pytest.raises(ConfigError, match="unet3d"):
        spec(view="volume")
    with pytest.raises(ConfigError, match="unet3d"):
        spec(network={"name": "unet3d"})
    with pytest.raises(ConfigError, match=r"patch.size"):
        spec(view="volume", network={"name": "unet3d", "depth": 3}, patch={"size": [12, 32, 32]})


def test_25d_needs_unet25d_and_passes_n_slices() -> None:
    s = spec(network={"name": "unet25d", "base": 4}, n_slices=5)
    assert s.network_options == {"base": 4, "n_slices": 5}
    for bad in ({"n_slices": 3}, {"network": {"name": "unet25d"}}, {"network": {"name": "unet25d"}, "n_slices": 4}):
        with pytest.raises(ConfigError, match="n_slices"):
            spec(**bad)


def test_weight_map_losses_need_a_known_weight_map() -> None:
    assert spec(loss="ce_distance", weight_map="plain").uses_weight_map()
    with pytest.raises(ConfigError, match="needs `weight_map`"):
        spec(loss="weighted_ce")
    with pytest.raises(ConfigError, match="not among the dataset's weight_maps"):
        spec(loss="weighted_ce", weight_map="other")


def test_unknown_names_are_named() -> None:
    with pytest.raises(ConfigError, match=r"network.name"):
        spec(network={"name": "resnet"})
    with pytest.raises(ConfigError, match="view"):
        spec(view="oblique")
    with pytest.raises(ConfigError, match="unknown key"):
        spec(epochs=3)
    with pytest.raises(ConfigError, match=r"fusion.step"):
        spec(view="three_plane", fusion={"step": 0.3})
    with pytest.raises(ConfigError, match=r"multiplanar.dim"):
        spec(view="multiplanar", multiplanar={"dim": 40})


def test_pretraining_and_rounds() -> None:
    s = spec(loss="weighted_ce", weight_map="plain", train={"epochs": 3}, pretrain={"train": {"epochs": 7}},
             interactive={"rounds": [2, 4]})
    p = s.pretraining()
    assert (p.loss, p.weight_map, p.interactive, p.pretrain) == ("ce", None, None, None)
    assert p.train == TrainSettings(epochs=7)
    assert s.train.epochs == 3 and s.interactive == InteractiveSettings(rounds=(2, 4), collision_eps_mm=2.0)
    with pytest.raises(ConfigError, match="rounds"):
        spec(interactive={"rounds": [4, 2]})
    with pytest.raises(ConfigError, match="poor labels have no weight map"):
        spec(pretrain={"loss": "weighted_ce"})
    with pytest.raises(ValueError, match="no pretrain"):
        spec().pretraining()
    assert interactive_split([2, 4, 8], 5) == [2, 4, 5] and interactive_split([2, 4], 2) == [2]


def test_input_multiple() -> None:
    assert input_multiple({"name": "unet2d", "depth": 3}) == 8
    assert input_multiple({"name": "vgg16unet"}) == 32
    assert input_multiple({"name": "deeplabv3plus"}) == 16
    assert input_multiple({"name": "segnet"}) == 32


@pytest.mark.parametrize("block, value, field", [
    ("train", {"epochs": 0}, "methods.m.train: training setting 'epochs'"),
    ("train", {"epoch": 3}, "methods.m.train: unknown training setting"),
    ("augment", {"p": 2}, "methods.m.augment: augmentation setting p"),
    ("inference", {"device": "tpu"}, "methods.m.inference: inference setting 'device'"),
    ("patch", {"overlap": 1.0}, "methods.m.patch: patch setting 'overlap'"),
    ("multiplanar", {"min_angle_deg": 120}, "methods.m.multiplanar: multiplanar setting 'min_angle_deg'"),
    ("pretrain", {"train": {"lr": -1}}, "methods.m.pretrain.train: training setting 'lr'"),
])
def test_every_block_is_parsed_when_the_config_is_read_and_errors_name_it(block, value, field) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        spec(**{block: value})


def test_settings_round_trip_through_plain_values() -> None:
    s = spec(view="volume", network={"name": "unet3d", "depth": 2}, patch={"size": [16, 32, 32]},
             train={"epochs": 2, "betas": [0.8, 0.9]}, augment={"elastic": 0.3})
    assert s.patch.to_dict() == {"size": [16, 32, 32], "samples_per_case": 8, "foreground_fraction": 0.5,
                                 "overlap": 0.5}
    assert TrainSettings.from_dict(s.train.to_dict()) == s.train and s.train.to_dict()["betas"] == [0.8, 0.9]
    assert type(s.augment).from_dict(s.augment.to_dict()) == s.augment


def test_a_subset_of_training_patients_is_parsed_and_scales_epochs_to_equal_steps() -> None:
    from mskseg.nn.subset_settings import SubsetSettings

    spec = MethodSpec.from_config("m", {"kind": "trained", "network": {"name": "unet2d"},
                                        "train_subjects": {"size": 5, "seed": 2, "balance_by": "kl_grade"}})
    subset = spec.train_subjects
    assert (subset.size, subset.seed, subset.balance_by, subset.equal_steps) == (5, 2, "kl_grade", True)
    # the paper's 240 / 80 / 40 / 20 epochs for 5 / 15 / 30 / 60 of 60 patients
    assert [subset.epochs(20, steps_per_epoch=None, n_full=60, n_subset=n) for n in (5, 15, 30, 60)] == [240, 80, 40,
                                                                                                        20]
    assert subset.epochs(20, steps_per_epoch=25, n_full=60, n_subset=5) == 20  # an epoch is 25 steps already
    assert SubsetSettings(size=0.25).size == 0.25 and SubsetSettings(size=1.0).size == 1.0
    assert isinstance(SubsetSettings(size=4.0).size, int)
    for bad in (0, -1, 2.5, True, float("nan")):
        with pytest.raises(ValueError, match="size"):
            SubsetSettings(size=bad)
    with pytest.raises(ConfigError, match=r"train_subjects.*interactive"):
        MethodSpec.from_config("m", {"kind": "trained", "interactive": {"rounds": [2, 4]},
                                     "train_subjects": {"size": 2}})


def test_the_training_key_leaves_out_what_acts_after_training() -> None:
    base = {"kind": "trained", "network": {"name": "unet2d", "base": 8}, "loss": "ce", "train": {"epochs": 3}}
    sagittal = MethodSpec.from_config("a", {**base, "view": "sagittal"})
    planes = MethodSpec.from_config("b", {**base, "view": "three_plane", "postprocess": True, "threads": 4,
                                          "fusion": {"step": 0.1}})
    assert sagittal.view_training_key("sagittal") == planes.view_training_key("sagittal")
    assert planes.view_training_key("axial") != planes.view_training_key("sagittal")
    longer = MethodSpec.from_config("c", {**base, "view": "sagittal", "train": {"epochs": 4}})
    assert longer.view_training_key("sagittal") != sagittal.view_training_key("sagittal")
    with pytest.raises(ValueError, match="no 'axial' model"):
        sagittal.view_training_key("axial")
