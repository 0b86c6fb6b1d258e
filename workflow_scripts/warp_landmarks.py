"""Rule warp_landmarks: carry the reference landmarks to one subject's structure and score them."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io import read_volume
from mskseg.io.landmarks import read_landmarks_csv, write_landmarks_csv, write_slicer_markups
from mskseg.io.tables import read_json, read_table, write_json
from mskseg.landmarks.correspondence import carry_frame, quality_record, true_points, truth_errors
from mskseg.registration.fields import read_field, read_transform
from mskseg.workflow.logs import setup_logging
from mskseg.workflow.paths import optional_input


def main(*, affine: Path, field: Path, record: Path, mask: Path, reference_landmarks: Path, reference_truth: Path,
         truth: Path | None, subject: str, structure: str, mirrored: bool, shape: dict[str, Any],
         landmarks: Path, markups: Path, quality: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "warp_landmarks")
    tx, disp = read_transform(affine), read_field(field)
    reg = read_json(record)
    table = carry_frame(read_landmarks_csv(reference_landmarks), tx, disp, mirrored)
    carried = table[["x", "y", "z"]].to_numpy()
    write_landmarks_csv(table, landmarks)
    write_slicer_markups(carried, markups, name=f"{subject}-{structure}")
    errors = None
    ref_truth = read_landmarks_csv(reference_truth) if truth is not None else None
    if ref_truth is not None and len(ref_truth):
        truth_table = true_points(read_table(truth), structure)
        errors = truth_errors(carry_frame(ref_truth, tx, disp, mirrored), truth_table)
    scores = quality_record(carried, read_volume(mask), shape["labels"][structure], truth_error=errors)
    done = {"subject": subject, "structure": structure, "mirrored": mirrored, "converged": reg["converged"],
            "reason": reg.get("reason", ""), "dice": reg["dice"], "n_landmarks": len(table), **scores,
            **{k: v for k, v in reg.items() if k.startswith("trim_")}}
    write_json(quality, done)
    logger.info("%s %s: %d landmarks, mean distance to own surface %.3f mm%s", subject, structure, len(table),
                scores["surface_mean_mm"],
                f", to true points {scores['truth_mean_mm']:.3f} mm" if errors is not None else "")


if __name__ == "__main__":
    main(affine=Path(snakemake.input.affine), field=Path(snakemake.input.field),  # noqa: F821
         record=Path(snakemake.input.record), mask=Path(snakemake.input.mask),  # noqa: F821
         reference_landmarks=Path(snakemake.input.reference_landmarks),  # noqa: F821
         reference_truth=Path(snakemake.input.reference_truth),  # noqa: F821
         truth=optional_input(snakemake.input, "truth"),  # noqa: F821
         subject=snakemake.wildcards.subject, structure=snakemake.wildcards.structure,  # noqa: F821
         mirrored=bool(snakemake.params.mirrored), shape=dict(snakemake.params.shape),  # noqa: F821
         landmarks=Path(snakemake.output.landmarks), markups=Path(snakemake.output.markups),  # noqa: F821
         quality=Path(snakemake.output.quality), log=snakemake.log[0])  # noqa: F821
