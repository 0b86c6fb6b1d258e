from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mskseg.io import write_volume
from mskseg.qc import QCSettings, check_subject, records_frame, summarise
from mskseg.volume import Volume

LABELS = {"a": 1, "b": 2}


def _run(tmp_path: Path, image: Volume, mask: Volume | None, settings: QCSettings | None = None) -> dict[str, tuple]:
    write_volume(image, tmp_path / "img.nii.gz")
    label = ""
    if mask is not None:
        write_volume(mask, tmp_path / "msk.nii.gz")
        label = str(tmp_path / "msk.nii.gz")
    records, _, _ = check_subject("s1", tmp_path / "img.nii.gz", label, settings or QCSettings(labels=LABELS))
    assert [r.check for r in records] == ["image_read", "image_spacing", "image_intensity", "label_read",
                                          "geometry", "label_values", "structures_present"]
    return {r.check: (r.status, r.detail) for r in records}


def test_clean_subject_passes(tmp_path: Path, pair) -> None:
    result = _run(tmp_path, *pair)
    assert {s for s, _ in result.values()} == {"pass"}


def test_corrupt_image_fails_and_skips_the_rest(tmp_path: Path) -> None:
    (tmp_path / "img.nii.gz").write_bytes(b"garbage")
    records, image, mask = check_subject("s1", tmp_path / "img.nii.gz", "", QCSettings(labels=LABELS))
    status = {r.check: r.status for r in records}
    assert status["image_read"] == "fail" and image is None and mask is None
    assert [s for c, s in status.items() if c != "image_read"] == ["skipped"] * 6
    assert "img.nii.gz" in records[0].detail


def test_shifted_origin_fails_geometry(tmp_path: Path, pair) -> None:
    image, mask = pair
    shifted = Volume(mask.array, mask.spacing, tuple(np.add(mask.origin, (0.0, 0.5, 0.0))), mask.direction)
    status, detail = _run(tmp_path, image, shifted)["geometry"]
    assert status == "fail" and "origin" in detail and "off by 0.5 mm" in detail


def test_other_spacing_and_size_fail_geometry(tmp_path: Path, pair) -> None:
    image, mask = pair
    stretched = Volume(mask.array, (0.8, 0.6, 1.6), mask.origin, mask.direction)
    assert "spacing" in _run(tmp_path, image, stretched)["geometry"][1]
    smaller = Volume(mask.array[1:], mask.spacing, mask.origin, mask.direction)
    assert "size" in _run(tmp_path, image, smaller)["geometry"][1]


def test_unknown_label_fails(tmp_path: Path, pair) -> None:
    image, mask = pair
    arr = mask.array.copy()
    arr[0, 0, :3] = 7
    status, detail = _run(tmp_path, image, mask.with_array(arr))["label_values"]
    assert status == "fail" and "7 (3 voxels)" in detail


def test_empty_structure_fails_naming_it(tmp_path: Path, pair) -> None:
    image, mask = pair
    arr = np.where(mask.array == 2, 0, mask.array).astype(np.uint8)
    status, detail = _run(tmp_path, image, mask.with_array(arr))["structures_present"]
    assert status == "fail" and detail == "empty structure(s): b (2)"
    # only the structures the dataset expects are required
    settings = QCSettings(labels=LABELS, expected=("a",))
    assert _run(tmp_path, image, mask.with_array(arr), settings)["structures_present"][0] == "pass"


def test_non_integer_and_negative_masks_fail(tmp_path: Path, pair) -> None:
    image, mask = pair
    assert "non-integer" in _run(tmp_path, image, mask.with_array(mask.array * 0.5))["label_values"][1]
    neg = mask.array.astype(np.int16)
    neg[0, 0, 0] = -1
    assert "negative" in _run(tmp_path, image, mask.with_array(neg))["label_values"][1]


def test_bad_spacing_and_intensities_fail(tmp_path: Path, pair) -> None:
    image, mask = pair
    huge = Volume(image.array, (0.8, 0.6, 25.0), image.origin, image.direction)
    assert _run(tmp_path, huge, None)["image_spacing"][0] == "fail"
    arr = image.array.copy()
    arr[1, 1, 1] = np.nan
    write_volume(image.with_array(arr), tmp_path / "nan.mha")  # (SimpleITK's NIfTI writer drops NaN)
    records, _, _ = check_subject("s1", tmp_path / "nan.mha", "", QCSettings(labels=LABELS))
    status, detail = next((r.status, r.detail) for r in records if r.check == "image_intensity")
    assert status == "fail" and "1 voxels are NaN" in detail
    assert "constant" in _run(tmp_path, image.with_array(np.ones_like(arr)), mask)["image_intensity"][1]


def test_missing_label_file_fails_and_no_label_is_skipped(tmp_path: Path, pair) -> None:
    image, _ = pair
    write_volume(image, tmp_path / "img.nii.gz")
    records, _, _ = check_subject("s1", tmp_path / "img.nii.gz", tmp_path / "gone.nii.gz", QCSettings(labels=LABELS))
    assert {r.check: r.status for r in records}["label_read"] == "fail"
    result = _run(tmp_path, image, None)
    assert result["label_read"] == ("skipped", "no label given")


def test_summary_lists_every_subject(tmp_path: Path) -> None:
    from mskseg.qc import QCRecord

    records = records_frame([QCRecord("a", "image_read", "pass"), QCRecord("b", "image_read", "fail", "bad"),
                             QCRecord("c", "geometry", "fixed", "re-headered")])
    manifest = pd.DataFrame({"subject": ["a", "b", "c", "d"], "label": ["x", "x", "", "x"]})
    summary = summarise(records, manifest).set_index("subject")
    assert summary["qc_passed"].to_dict() == {"a": True, "b": False, "c": True, "d": False}
    assert summary.loc["b", "qc_failures"] == "image_read: bad"
    assert summary.loc["d", "qc_failures"] == "no QC record"
    assert summary.loc["c", "qc_fixes"] == "geometry" and not summary.loc["c", "has_label"]


def test_settings_reject_unknown_expected_structure() -> None:
    with pytest.raises(ValueError, match="not declared"):
        QCSettings(labels=LABELS, expected=("c",))


def test_a_huge_label_value_fails_without_memory_for_every_value(tmp_path: Path, pair) -> None:
    import tracemalloc

    image, mask = pair
    huge = mask.array.astype(np.int32)
    huge[0, 0, 0] = 2_000_000_000  # np.bincount would allocate 16 GB
    tracemalloc.start()
    result = _run(tmp_path, image, mask.with_array(huge))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result["label_values"][0] == "fail" and "2000000000 (1 voxels)" in result["label_values"][1]
    assert peak < 100e6  # bincount up to the value: 16 GB


def test_an_unexpected_error_is_recorded_as_a_failed_check(tmp_path: Path, pair, monkeypatch) -> None:
    import mskseg.qc

    def broken(_image):
        raise MemoryError("out of memory in the intensity check")

    monkeypatch.setattr(mskseg.qc, "_check_intensity", broken)
    result = _run(tmp_path, *pair)
    assert result["image_intensity"] == ("fail", "unexpected error: MemoryError: out of memory in the intensity check")
    assert result["image_spacing"][0] == "pass"
    assert {result[c][0] for c in ("label_read", "geometry", "label_values", "structures_present")} == {"skipped"}


def test_a_truncated_image_fails_qc(tmp_path: Path, pair) -> None:
    image, mask = pair
    write_volume(image, tmp_path / "img.nii.gz")
    write_volume(mask, tmp_path / "msk.nii.gz")
    content = (tmp_path / "img.nii.gz").read_bytes()
    (tmp_path / "img.nii.gz").write_bytes(content[: len(content) // 2])
    records, image_read, _ = check_subject("s1", tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz",
                                           QCSettings(labels=LABELS))
    assert image_read is None and records[0].status == "fail" and "truncated" in records[0].detail


def test_an_image_without_label_is_checked_and_its_orientation_recorded(tmp_path) -> None:
    from mskseg.io import write_volume
    from mskseg.synthetic import generate_subject
    from mskseg.synthetic.regrid import oblique_copy

    subject = generate_subject("knee", 0, seed=1, shape=(24, 40, 40), spacing=(4.0, 3.0, 3.0), n_landmarks=10)
    image, _, _ = oblique_copy(subject.image, subject.mask, degrees=5.0)
    write_volume(image, tmp_path / "scan.nii.gz")
    records, read, mask = check_subject("s", tmp_path / "scan.nii.gz", None, QCSettings(labels={"femur": 1}))
    by_check = {r.check: r for r in records}
    assert by_check["image_read"].status == "pass" and "(oblique)" in by_check["image_read"].detail
    assert by_check["label_read"].status == "skipped" and read is not None and mask is None


def test_undeclared_values_fail_unless_the_dataset_makes_them_background(tmp_path: Path, pair) -> None:
    image, mask = pair
    only_b = {"b": 2}  # the pair's masks hold 1 and 2
    failed = _run(tmp_path, image, mask, QCSettings(labels=only_b))
    assert failed["label_values"][0] == "fail" and "undeclared label value(s) 1" in failed["label_values"][1]
    kept = _run(tmp_path, image, mask, QCSettings(labels=only_b, undeclared="background"))
    assert kept["label_values"][0] == "pass" and "undeclared 1 (" in kept["label_values"][1]
    assert "become background" in kept["label_values"][1] and kept["structures_present"][0] == "pass"
    assert QCSettings.from_dict(QCSettings(labels=only_b, undeclared="background").to_dict()).undeclared == "background"
    with pytest.raises(ValueError, match="undeclared"):
        QCSettings(labels=only_b, undeclared="drop")
