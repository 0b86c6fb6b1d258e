from pathlib import Path

import numpy as np
import pytest

from mskseg.io import write_volume
from mskseg.io.layouts import scan_layout
from mskseg.io.manifest import ManifestError
from mskseg.qc import QCSettings, check_subject
from mskseg.volume import Volume
from tests.conftest import sphere_pair

OAI_LABELS = {"femur": 1, "femoral_cartilage": 2, "tibia": 3, "tibial_cartilage": 4}


def write_oai_zib_folder(root: Path) -> None:
    """A folder as OAI-ZIB ships it: <id>.mhd images beside <id>.segmentation_masks.mhd masks whose
    headers carry another origin and direction than their image (the known defect)."""
    image, mask = sphere_pair(labels=(1, 2, 3, 4))
    wrong = Volume(mask.array, mask.spacing, (0.0, 0.0, 0.0), np.eye(3))
    write_volume(image, root / "9001104.mhd")
    write_volume(wrong, root / "9001104.segmentation_masks.mhd")
    # a second subject in a subfolder, mask of another shape
    write_volume(image, root / "sub" / "9002116.mhd")
    write_volume(Volume(mask.array[:-2], mask.spacing), root / "sub" / "9002116.segmentation_masks.mhd")
    # a mask whose image is missing, and an image without a mask
    write_volume(wrong, root / "9003380.segmentation_masks.mhd")
    write_volume(image, root / "9004000.mha")


def test_oai_zib_layout_scans_and_reheaders(tmp_path: Path) -> None:
    write_oai_zib_folder(tmp_path)
    frame = scan_layout("oai-zib", tmp_path).set_index("subject")
    assert list(frame.index) == ["9001104", "9002116", "9003380", "9004000"]
    assert frame.loc["9002116", "image"].endswith("sub/9002116.mhd")
    assert frame.loc["9003380", "image"].endswith("9003380.mhd")  # expected path, missing: QC records it
    assert frame.loc["9004000", "label"] == ""

    settings = QCSettings(labels=OAI_LABELS, mask_geometry="from_image")
    records, image, mask = check_subject("9001104", frame.loc["9001104", "image"], frame.loc["9001104", "label"],
                                         settings)
    status = {r.check: r.status for r in records}
    assert status["geometry"] == "fixed" and "fail" not in status.values()
    geometry = next(r for r in records if r.check == "geometry")
    assert "origin" in geometry.detail and "direction" in geometry.detail
    assert mask is not None and mask.geometry_mismatches(image) == []

    records, _, _ = check_subject("9002116", frame.loc["9002116", "image"], frame.loc["9002116", "label"], settings)
    failed = {r.check: r.detail for r in records if r.status == "fail"}
    assert "size" in failed["geometry"]

    records, _, _ = check_subject("9003380", frame.loc["9003380", "image"], frame.loc["9003380", "label"], settings)
    assert {r.check for r in records if r.status == "fail"} == {"image_read"}


def test_oai_zib_masks_fail_geometry_without_reheadering(tmp_path: Path) -> None:
    write_oai_zib_folder(tmp_path)
    frame = scan_layout("oai-zib", tmp_path).set_index("subject")
    records, _, _ = check_subject("9001104", frame.loc["9001104", "image"], frame.loc["9001104", "label"],
                                  QCSettings(labels=OAI_LABELS, mask_geometry="check"))
    assert any(r.check == "geometry" and r.status == "fail" and "origin" in r.detail for r in records)


def test_images_labels_layout_and_errors(tmp_path: Path) -> None:
    image, mask = sphere_pair()
    write_volume(image, tmp_path / "images" / "a1.nii.gz")
    write_volume(mask, tmp_path / "labels" / "a1.nii.gz")
    write_volume(image, tmp_path / "images" / "a2.nrrd")
    frame = scan_layout("images-labels", tmp_path)
    assert frame["subject"].tolist() == ["a1", "a2"]
    assert frame["label"].tolist()[1] == ""
    with pytest.raises(ManifestError, match="unknown layout 'bids'; known layouts: oai-zib, images-labels"):
        scan_layout("bids", tmp_path)
    with pytest.raises(ManifestError, match="does not exist"):
        scan_layout("oai-zib", tmp_path / "nowhere")
    with pytest.raises(ManifestError, match="no OAI-ZIB scans"):
        scan_layout("oai-zib", _empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def test_images_layout_lists_files_and_dicom_series_without_labels(tmp_path: Path) -> None:
    from mskseg.io.volumes import write_dicom_series

    image, _ = sphere_pair()
    write_volume(image, tmp_path / "scan-a.nii.gz")
    write_volume(image, tmp_path / "scanb.mha")
    write_dicom_series(image.with_array(image.array.astype("int16")), tmp_path / "scanc")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a series", encoding="utf-8")
    (tmp_path / "list.csv").write_text("x", encoding="utf-8")
    frame = scan_layout("images", tmp_path)
    assert frame["subject"].tolist() == ["scan-a", "scanb", "scanc"]
    assert (frame["label"] == "").all() and frame["image"].iloc[2].endswith("scanc")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="no image files or DICOM series"):
        scan_layout("images", empty)
