"""Model bundles: a method's trained files exported as a folder or an archive, loaded back with their checksums
verified, and checked against a dataset's labels and preprocessing."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mskseg.errors import ConfigError
from mskseg.io.checksums import file_sha256
from mskseg.nn.bundle import (
    BUNDLE_VERSION,
    CARD,
    Bundle,
    BundleError,
    FoldFiles,
    best_val_dice,
    check_compatible,
    export_bundle,
    load_bundle,
)

LABELS = {"background": 0, "femur": 1, "tibia": 2}
PREPROCESS = {"orientation": "LPS", "spacing": (0.5, 0.5, 1.0), "image_interpolator": "linear",
              "mask_interpolator": "nearest", "modality": "mri", "clip_percentiles": (0.5, 99.5),
              "crop_labels": (1, 2), "crop_margin_mm": 10.0}
TRAINED = {"kind": "trained", "network": {"name": "unet2d", "depth": 3}, "view": "sagittal", "train": {"epochs": 2}}
SHAPEFIT = {"kind": "shape_fitting", "presegmentation": "unet_sag", "regression": {"epochs": 1},
            "refinement": {"epochs": 1}}
HISTORY = "epoch,train_loss,val_loss,val_dice\n1,0.9,0.8,0.61\n2,0.7,0.6,\n3,0.5,0.5,0.83\n4,0.4,0.6,0.79\n"


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def trained_folds(src: Path) -> dict[str, FoldFiles]:
    """Two folds of a sagittal method: weights, description and history, each with fold-specific bytes."""
    folds = {}
    for k in ("0", "1"):
        stem = src / f"method-unet_fold-{k}_view-sagittal"
        files = {"model/sagittal": _write(stem.with_name(stem.name + "_model.pt"), f"weights {k}".encode()),
                 "info/sagittal": _write(stem.with_name(stem.name + "_model.json"),
                                         json.dumps({"view": "sagittal", "fold": k}).encode()),
                 "history/sagittal": _write(stem.with_name(stem.name + "_history.csv"), HISTORY.encode())}
        folds[k] = FoldFiles(files=files, n_train=8 + int(k), n_val=2)
    return folds


def shape_folds(src: Path) -> dict[str, FoldFiles]:
    """Two folds of a shape-fitting method: presegmentation, regression, refinement and shape-model roles."""
    folds = {}
    for k in ("0", "1"):
        d = src / f"fold{k}"
        files = {"pre_model/sagittal": _write(d / "pre.pt", f"pre {k}".encode()),
                 "pre_info/sagittal": _write(d / "pre.json", b"{}"),
                 "regression/femur": _write(d / "part-femur_regression.pt", f"regression {k}".encode()),
                 "regression_info/femur": _write(d / "part-femur_regression.json", b'{"part": "femur"}'),
                 "regression_history/femur": _write(d / "part-femur_history.csv", b"epoch,train_loss\n1,0.5\n"),
                 "refinement": _write(d / "refinement.pt", f"refinement {k}".encode()),
                 "refinement_info": _write(d / "refinement.json", b'{"n": 3}'),
                 "selection": _write(d / "selection.tsv", b"bone\tindex\nfemur\t4\n"),
                 "shape_model/femur": _write(d / "bone-femur_model.npz", bytes(range(256)) * 4),
                 "shape_header/femur": _write(d / "bone-femur_model.json", b'{"structure": "femur"}')}
        folds[k] = FoldFiles(files=files, n_train=5, n_val=1 + int(k))
    return folds


def export(dest: Path, folds: dict[str, FoldFiles], *, kind: str = "trained", archive: bool = False, **kw) -> Path:
    config = TRAINED if kind == "trained" else SHAPEFIT
    return export_bundle(dest, method="unet_sag" if kind == "trained" else "shapefit", kind=kind,
                         method_config=config, labels=LABELS, preprocess=PREPROCESS, folds=folds, archive=archive,
                         **kw)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def check_loaded(bundle: Bundle, folds: dict[str, FoldFiles], kind: str) -> None:
    """The card's fields and the files' contents are what was exported."""
    assert bundle.version == BUNDLE_VERSION and bundle.kind == kind
    assert bundle.labels == LABELS
    assert bundle.preprocess == json.loads(json.dumps(PREPROCESS))  # tuples come back as lists
    assert bundle.method_config == (TRAINED if kind == "trained" else SHAPEFIT)
    assert set(bundle.versions) == {"mskseg", "torch", "numpy", "SimpleITK", "python"}
    assert bundle.versions["python"] == ".".join(map(str, sys.version_info[:3]))
    created = dt.datetime.fromisoformat(bundle.created)
    assert created.utcoffset() == dt.timedelta(0)
    assert set(bundle.folds) == set(folds)
    every = set()
    for name, fold in bundle.folds.items():
        assert (fold.n_train, fold.n_val) == (folds[name].n_train, folds[name].n_val)
        assert set(fold.files) == set(folds[name].files)
        for role, path in fold.files.items():
            assert path.is_absolute() and path.is_relative_to(bundle.root)
            assert path.read_bytes() == folds[name].files[role].read_bytes()
            assert bundle.checksums[path.relative_to(bundle.root).as_posix()] == file_sha256(path)
            every.add(path.relative_to(bundle.root).as_posix())
    files = {p.relative_to(bundle.root).as_posix() for p in bundle.root.rglob("*") if p.is_file()}
    assert files - {CARD} == every == set(bundle.checksums)


# ---- export and load -------------------------------------------------------------------------------
@pytest.mark.parametrize("archive", [False, True])
def test_trained_method_round_trip(tmp_path, archive):
    folds = trained_folds(tmp_path / "src")
    dest = tmp_path / "out" / ("unet.tar.gz" if archive else "unet")
    assert export(dest, folds, archive=archive) == dest
    assert dest.is_file() if archive else dest.is_dir()
    assert leftovers(dest.parent) == []
    bundle = load_bundle(dest)
    check_loaded(bundle, folds, "trained")
    assert bundle.method == "unet_sag"
    assert bundle.root == (tmp_path / "out" / ("unet.extracted" if archive else "unet")).resolve()
    fold = bundle.folds["0"]
    assert fold.path("model/sagittal") == bundle.root / "fold-0" / "model" / "sagittal.pt"
    assert fold.keyed("info") == {"sagittal": bundle.root / "fold-0" / "info" / "sagittal.json"}
    assert fold.val_dice == {"history/sagittal": pytest.approx(0.83)}
    with pytest.raises(BundleError, match=r"fold 0: no file of role 'fusion'"):
        fold.path("fusion")


@pytest.mark.parametrize("archive", [False, True])
def test_shape_fitting_method_round_trip(tmp_path, archive):
    folds = shape_folds(tmp_path / "src")
    dest = tmp_path / ("shapefit.tar.gz" if archive else "shapefit")
    export(dest, folds, kind="shape_fitting", archive=archive)
    bundle = load_bundle(dest)
    check_loaded(bundle, folds, "shape_fitting")
    fold = bundle.folds["1"]
    assert set(fold.keyed("regression")) == set(fold.keyed("shape_model")) == {"femur"}
    assert fold.path("selection").name == "selection.tsv"
    assert fold.path("refinement").relative_to(bundle.root).as_posix() == "fold-1/refinement.pt"
    assert fold.val_dice == {"regression_history/femur": None}  # no val_dice column


def test_archive_starts_with_the_card_and_extracts_where_asked(tmp_path):
    dest = export(tmp_path / "b.tar.gz", trained_folds(tmp_path / "src"), archive=True)
    with tarfile.open(dest) as tar:
        assert tar.getnames()[0] == CARD
    bundle = load_bundle(dest, extract_to=tmp_path / "cache")
    assert bundle.root == (tmp_path / "cache").resolve()
    assert bundle.source == dest.resolve()
    again = load_bundle(dest, extract_to=tmp_path / "cache")  # the cache is reused
    assert again.folds["0"].files == bundle.folds["0"].files


def test_a_changed_cache_is_extracted_again(tmp_path):
    folds = trained_folds(tmp_path / "src")
    dest = export(tmp_path / "b.tar.gz", folds, archive=True)
    bundle = load_bundle(dest)
    model = bundle.folds["0"].path("model/sagittal")
    model.write_bytes(b"tampered")
    again = load_bundle(dest)  # the archive is what counts
    assert again.folds["0"].path("model/sagittal").read_bytes() == b"weights 0"


def test_extraction_never_replaces_a_folder_that_is_no_bundle(tmp_path):
    dest = export(tmp_path / "b.tar.gz", trained_folds(tmp_path / "src"), archive=True)
    _write(tmp_path / "mine" / "notes.txt", b"keep me")
    with pytest.raises(BundleError, match="holds no bundle"):
        load_bundle(dest, extract_to=tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_bytes() == b"keep me"


def test_best_val_dice_skips_empty_cells(tmp_path):
    assert best_val_dice(_write(tmp_path / "h.csv", HISTORY.encode())) == pytest.approx(0.83)
    assert best_val_dice(_write(tmp_path / "e.csv", b"epoch,val_dice\n1,\n2,nan\n")) is None


def test_import_needs_no_torch():
    code = "import sys, mskseg.nn.bundle; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- checks on load --------------------------------------------------------------------------------
def test_a_changed_byte_names_the_file(tmp_path):
    dest = export(tmp_path / "b", trained_folds(tmp_path / "src"))
    target = dest / "fold-1" / "model" / "sagittal.pt"
    data = bytearray(target.read_bytes())
    data[0] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"fold-1/model/sagittal\.pt: checksum mismatch") as err:
        load_bundle(dest)
    assert isinstance(err.value, ConfigError)


def test_a_changed_member_of_an_archive_names_the_file(tmp_path):
    dest = export(tmp_path / "b", trained_folds(tmp_path / "src"))
    (dest / "fold-0" / "history" / "sagittal.csv").write_text("epoch\n1\n")
    archive = tmp_path / "b.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(dest / CARD, arcname=CARD)
        for path in sorted(p for p in dest.rglob("*") if p.is_file() and p.name != CARD):
            tar.add(path, arcname=path.relative_to(dest).as_posix())
    with pytest.raises(BundleError, match=r"fold-0/history/sagittal\.csv: checksum mismatch"):
        load_bundle(archive)


def test_a_missing_file_is_named(tmp_path):
    dest = export(tmp_path / "b", shape_folds(tmp_path / "src"), kind="shape_fitting")
    (dest / "fold-0" / "shape_model" / "femur.npz").unlink()
    with pytest.raises(BundleError, match=r"fold-0/shape_model/femur\.npz: missing"):
        load_bundle(dest)


@pytest.mark.parametrize(("version", "message"), [(2, r"bundle version 2; .*newer mskseg"), (0, r"bundle version 0"),
                                                  (None, r"bundle version None")])
def test_another_bundle_version_is_refused(tmp_path, version, message):
    dest = export(tmp_path / "b", trained_folds(tmp_path / "src"))
    card = json.loads((dest / CARD).read_text())
    card["bundle_version"] = version
    (dest / CARD).write_text(json.dumps(card))
    with pytest.raises(BundleError, match=message):
        load_bundle(dest)


def test_not_a_bundle(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match=r"no card\.json"):
        load_bundle(tmp_path / "empty")
    with pytest.raises(BundleError, match="neither a bundle folder"):
        load_bundle(tmp_path / "absent")


def test_a_card_path_outside_the_bundle_is_refused(tmp_path):
    dest = export(tmp_path / "b", trained_folds(tmp_path / "src"))
    card = json.loads((dest / CARD).read_text())
    card["checksums"]["../secret"] = "0" * 64
    (dest / CARD).write_text(json.dumps(card))
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(dest)


# ---- export failures -------------------------------------------------------------------------------
@pytest.mark.parametrize("archive", [False, True])
def test_an_interrupted_export_leaves_nothing(tmp_path, archive):
    folds = trained_folds(tmp_path / "src")
    folds["1"].files["model/sagittal"].unlink()  # copied last, after other files of the bundle
    out = tmp_path / "out"
    out.mkdir()
    dest = out / ("b.tar.gz" if archive else "b")
    with pytest.raises(FileNotFoundError):
        export(dest, folds, archive=archive)
    assert list(out.iterdir()) == []


def test_a_failed_overwrite_keeps_the_old_bundle(tmp_path):
    folds = trained_folds(tmp_path / "src")
    dest = export(tmp_path / "b", folds)
    with pytest.raises(FileExistsError):
        export(dest, folds)
    folds["0"].files["history/sagittal"].unlink()
    with pytest.raises(FileNotFoundError):
        export(dest, folds, overwrite=True)
    assert load_bundle(dest).folds["0"].path("history/sagittal").read_text() == HISTORY
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_the_bundle(tmp_path):
    dest = export(tmp_path / "b", trained_folds(tmp_path / "src"))
    export(dest, shape_folds(tmp_path / "src2"), kind="shape_fitting", overwrite=True)
    assert load_bundle(dest).kind == "shape_fitting"
    assert not (dest / "fold-0" / "model").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f["0"].files.pop("info/sagittal"), r"fold 0: 'model/sagittal' without 'info/sagittal'"),
    (lambda f: f["1"].files.update(fusion=f["1"].files["info/sagittal"]), r"fold 1 has roles"),
    (lambda f: f["0"].files.update({"regression/femur": f["0"].files["info/sagittal"]}),
     r"role 'regression/femur' is not one of a trained method's roles"),
    (lambda f: f["0"].files.update({"model/../x": f["0"].files["info/sagittal"]}), r"role 'model/../x'"),
])
def test_roles_are_checked_before_anything_is_written(tmp_path, change, message):
    folds = trained_folds(tmp_path / "src")
    change(folds)
    with pytest.raises(ValueError, match=message):
        export(tmp_path / "out", folds)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_shape_fitting_needs_its_parts(tmp_path):
    folds = shape_folds(tmp_path / "src")
    for files in folds.values():
        files.files.pop("selection")
    with pytest.raises(ValueError, match="refinement, refinement_info and selection go together"):
        export(tmp_path / "out", folds, kind="shape_fitting")
    with pytest.raises(ValueError, match="needs a model/<key> file"):
        export(tmp_path / "out", {"0": FoldFiles(files={}, n_train=1, n_val=1)})
    with pytest.raises(ValueError, match=r"ends in \.tar\.gz"):
        export(tmp_path / "out.zip", trained_folds(tmp_path / "src"), archive=True)


# ---- compatibility ---------------------------------------------------------------------------------
@pytest.fixture
def bundle(tmp_path) -> Bundle:
    return load_bundle(export(tmp_path / "b", trained_folds(tmp_path / "src")))


WHERE = "datasets.newknees.segment.bundle"


def test_equal_settings_are_compatible(bundle):
    check_compatible(bundle, labels=dict(LABELS), preprocess=dict(PREPROCESS), where=WHERE)
    # interpolators are not compared; a dataset that does not crop predicts whole scans
    other = PREPROCESS | {"image_interpolator": "bspline", "crop_labels": (), "orientation": "lps"}
    check_compatible(bundle, labels=LABELS, preprocess=other, where=WHERE)


@pytest.mark.parametrize(("labels", "message"), [
    ({"background": 0, "femur": 1}, r"labels: tibia \(2\) missing"),
    (LABELS | {"patella": 3}, r"labels: patella \(3\) extra"),
    (LABELS | {"tibia": 4}, r"labels: tibia is 4 here, 2 in the bundle"),
])
def test_other_labels_are_named(bundle, labels, message):
    with pytest.raises(BundleError, match=message) as err:
        check_compatible(bundle, labels=labels, preprocess=PREPROCESS, where=WHERE)
    assert str(err.value).startswith(WHERE)


@pytest.mark.parametrize(("change", "message"), [
    ({"spacing": (0.5, 0.5, 1.2)}, r"spacing is \(0.5, 0.5, 1.2\) here, \[0.5, 0.5, 1.0\] in the bundle"),
    ({"spacing": None}, r"spacing is None here"),
    ({"orientation": "RAS"}, r"orientation is 'RAS' here, 'LPS' in the bundle"),
    ({"modality": "ct"}, r"modality is 'ct' here, 'mri' in the bundle"),
    ({"clip_percentiles": (1.0, 99.0)}, r"clip_percentiles is \(1.0, 99.0\) here"),
    ({"crop_labels": (1,)}, r"crop_labels is \(1,\) here"),
    ({"crop_margin_mm": 5.0}, r"crop_margin_mm is 5.0 here, 10.0 in the bundle"),
])
def test_other_preprocessing_is_named(bundle, change, message):
    with pytest.raises(BundleError, match=f"{WHERE}: .*preprocess: {message}"):
        check_compatible(bundle, labels=LABELS, preprocess=PREPROCESS | change, where=WHERE)


def test_spacing_within_tolerance_and_ct_percentiles_pass(bundle):
    near = PREPROCESS | {"spacing": (0.5 + 1e-9, 0.5, 1.0)}
    check_compatible(bundle, labels=LABELS, preprocess=near, where=WHERE)
    ct = PREPROCESS | {"modality": "ct", "clip_percentiles": (1.0, 99.0)}
    with pytest.raises(BundleError) as err:
        check_compatible(bundle, labels=LABELS, preprocess=ct, where=WHERE)
    assert "clip_percentiles" not in str(err.value)  # CT ignores them: only the modality differs
