"""Named folder layouts that turn a folder of scans into a manifest.

A layout says where a subject's image and mask are and whether the mask's header
(origin, direction, spacing) can be trusted. ``mask_geometry``:

* ``"check"``: the mask must share the image's geometry (QC fails it otherwise);
* ``"from_image"``: the mask's header is known to be wrong (OAI-ZIB); when the mask
  array has the image's shape the mask is re-headered from its image and this is
  recorded; a shape difference is a QC failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mskseg.io.manifest import ManifestError, normalise_manifest

IMAGE_ENDINGS = (".mhd", ".mha", ".nii.gz", ".nii", ".nrrd", ".nhdr")


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    mask_geometry: str
    scan: Callable[[Path], pd.DataFrame]


def _find_image(folder: Path, subject: str) -> Path | None:
    for ending in IMAGE_ENDINGS:
        candidate = folder / f"{subject}{ending}"
        if candidate.is_file():
            return candidate
    series = folder / subject
    return series if series.is_dir() else None


def scan_oai_zib(root: Path) -> pd.DataFrame:
    """OAI-ZIB: ``<id>.segmentation_masks.mhd`` masks (1 femur, 2 femoral cartilage, 3 tibia,
    4 tibial cartilage) beside their images (``<id>.mhd``/``.mha``/``.nii.gz``/``.nrrd`` or a
    DICOM folder ``<id>/``), in ``root`` or its subfolders. Images without a mask are listed
    without a label; a mask whose image is missing is listed with the expected image path, so
    quality control records it instead of losing it.
    """
    mask_suffix = ".segmentation_masks.mhd"
    rows: dict[str, dict[str, str]] = {}
    for mask in sorted(root.rglob(f"*{mask_suffix}")):
        subject = mask.name[: -len(mask_suffix)]
        image = _find_image(mask.parent, subject)
        rows[subject] = {"subject": subject, "image": str(image or mask.parent / f"{subject}.mhd"),
                         "label": str(mask)}
    for ending in IMAGE_ENDINGS:
        for image in sorted(root.rglob(f"*{ending}")):
            if image.name.endswith(".segmentation_masks.mhd") or image.name.startswith("."):
                continue
            subject = image.name[: -len(ending)]
            if subject not in rows:
                rows[subject] = {"subject": subject, "image": str(image), "label": ""}
    if not rows:
        raise ManifestError(f"{root}: no OAI-ZIB scans found (no '*{mask_suffix}' or image files)")
    frame = pd.DataFrame(sorted(rows.values(), key=lambda r: r["subject"]))
    return normalise_manifest(frame, None, f"{root} (layout oai-zib)")


def scan_nifti_pairs(root: Path) -> pd.DataFrame:
    """``images/<id>.nii.gz`` with ``labels/<id>.nii.gz`` (nnU-Net-like; any supported ending)."""
    images, labels = root / "images", root / "labels"
    if not images.is_dir():
        raise ManifestError(f"{root}: layout 'images-labels' needs an 'images' folder")
    rows = []
    for image in sorted(p for p in images.iterdir() if not p.name.startswith(".")):
        subject = next((image.name[: -len(e)] for e in IMAGE_ENDINGS if image.name.endswith(e)), None)
        if subject is None:
            continue
        label = _find_image(labels, subject) if labels.is_dir() else None
        rows.append({"subject": subject, "image": str(image), "label": str(label or "")})
    if not rows:
        raise ManifestError(f"{root}/images: no image files found")
    return normalise_manifest(pd.DataFrame(rows), None, f"{root} (layout images-labels)")


def _is_series(folder: Path) -> bool:
    """A folder of DICOM slices: files ending ``.dcm`` or (as many scanners write them) without an ending."""
    files = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")]
    return bool(files) and all(f.suffix.lower() in (".dcm", ".ima", "") for f in files)


def scan_images(root: Path) -> pd.DataFrame:
    """A plain folder of scans without labels (new scans to segment): every image file in ``root`` (any supported
    ending; the subject is its name without the ending) and every subfolder holding a DICOM series (the subject
    is the folder's name). Names that are no valid subject id are refused by the manifest check, naming them."""
    rows = []
    for item in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        ending = next((e for e in IMAGE_ENDINGS if item.is_file() and item.name.endswith(e)), None)
        if ending is not None:
            rows.append({"subject": item.name[: -len(ending)], "image": str(item), "label": ""})
        elif item.is_dir() and _is_series(item):
            rows.append({"subject": item.name, "image": str(item), "label": ""})
    if not rows:
        raise ManifestError(f"{root}: no image files or DICOM series folders found (layout images)")
    return normalise_manifest(pd.DataFrame(rows), None, f"{root} (layout images)")


LAYOUTS: dict[str, Layout] = {
    "oai-zib": Layout("oai-zib", "OAI-ZIB knee MRI: <id>.segmentation_masks.mhd beside <id> images",
                      "from_image", scan_oai_zib),
    "images-labels": Layout("images-labels", "images/<id>.<ext> and labels/<id>.<ext>", "check",
                            scan_nifti_pairs),
    "images": Layout("images", "a folder of scans without labels: <id>.<ext> files and DICOM series folders <id>/",
                     "check", scan_images),
}


def scan_layout(name: str, root: str | Path) -> pd.DataFrame:
    """The manifest of a folder in a named layout."""
    if name not in LAYOUTS:
        raise ManifestError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}")
    folder = Path(root)
    if not folder.is_dir():
        raise ManifestError(f"{folder}: dataset folder does not exist (layout {name})")
    return LAYOUTS[name].scan(folder.resolve())
