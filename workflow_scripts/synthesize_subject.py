"""Rule synthesize_subject: one synthetic phantom subject with its ground truth."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io import write_volume
from mskseg.io.tables import write_json, write_table
from mskseg.synthetic import generate_subject
from mskseg.synthetic.regrid import oblique_copy
from mskseg.workflow.logs import setup_logging


def main(*, spec: dict[str, Any], index: int, image: Path, mask: Path, poor_mask: Path,
         landmarks: Path, params: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "synthesize_subject")
    shape = tuple(spec["shape"]) if spec.get("shape") else None
    spacing = tuple(spec["spacing"]) if spec.get("spacing") else None
    logger.info("generating %s subject %d (seed %s, shape %s, spacing %s)", spec["kind"], index,
                spec.get("seed", 0), shape or "default", spacing or "default")
    subject = generate_subject(spec["kind"], index, seed=int(spec.get("seed", 0)), shape=shape,
                               spacing=spacing, n_landmarks=int(spec.get("n_landmarks", 200)),
                               poor_labels=True, fov_jitter_mm=float(spec.get("fov_jitter_mm", 0.0)))
    degrees, shift = float(spec.get("oblique_deg") or 0.0), spec.get("origin_shift_mm") or (0.0, 0.0, 0.0)
    if degrees or any(shift):  # a grid of its own, as a new scan comes (the mask is the truth on that grid)
        _, subject.poor_mask, _ = oblique_copy(subject.image, subject.poor_mask, degrees=degrees, shift_mm=shift)
        subject.image, subject.mask, subject.landmarks = oblique_copy(
            subject.image, subject.mask, subject.landmarks, degrees=degrees, shift_mm=shift)
        logger.info("on an oblique grid: rotated %.1f degrees, moved %s mm", degrees, list(shift))
    write_volume(subject.image, image)
    write_volume(subject.mask, mask)
    write_volume(subject.poor_mask, poor_mask)
    write_table(subject.landmarks, landmarks)
    write_json(params, subject.params, sort_keys=True)
    logger.info("wrote %s: shape %s, spacing %s mm", image, subject.image.shape, subject.image.spacing)


if __name__ == "__main__":
    main(spec=snakemake.params.spec, index=snakemake.params.index, **dict(snakemake.output.items()),  # noqa: F821
         log=snakemake.log[0])  # noqa: F821
