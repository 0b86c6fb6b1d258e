"""Rule reference_landmarks: points spread evenly over the reference surface (+ its true landmarks on phantoms)."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io import read_volume
from mskseg.io.landmarks import write_landmarks_csv, write_slicer_markups
from mskseg.io.tables import read_table
from mskseg.landmarks.correspondence import reference_truth, sample_reference
from mskseg.registration.reference import chosen_instance
from mskseg.registration.trim import TrimSpec
from mskseg.workflow.logs import setup_logging


def main(*, mask: Path, table: Path, truth: list[Path], truth_subjects: list[str], shape: dict[str, Any],
         landmarks: Path, markups: Path, truth_out: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "reference_landmarks")
    ref = chosen_instance(read_table(table))
    points = sample_reference(read_volume(mask), shape["n_landmarks"], seed=shape["landmark_seed"],
                              trim=TrimSpec.from_dict(shape.get("trim")))
    write_landmarks_csv(points, landmarks)
    write_slicer_markups(points, markups, name=f"{ref.structure}")
    ref_truth = reference_truth(ref.subject, ref.structure, ref.mirrored,
                                dict(zip(truth_subjects, truth, strict=True)))
    write_landmarks_csv(ref_truth, truth_out)
    logger.info("%d landmarks on the surface of %s (%s); %d true landmarks", len(points), ref.key, mask,
                len(ref_truth))


if __name__ == "__main__":
    main(mask=Path(snakemake.input.mask), table=Path(snakemake.input.table),  # noqa: F821
         truth=[Path(p) for p in snakemake.input.truth], truth_subjects=list(snakemake.params.truth_subjects),  # noqa: F821
         shape=dict(snakemake.params.shape), landmarks=Path(snakemake.output.landmarks),  # noqa: F821
         markups=Path(snakemake.output.markups), truth_out=Path(snakemake.output.truth),  # noqa: F821
         log=snakemake.log[0])  # noqa: F821
