"""Rule reference_landmarks: points spread evenly over the reference surface (+ its true landmarks on phantoms)."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401
import pandas as pd

from mskseg.correspondence import sample_reference, true_points
from mskseg.io import read_volume
from mskseg.io.landmarks import write_landmarks_csv, write_slicer_markups
from mskseg.io.tables import read_table
from mskseg.logs import setup_logging
from mskseg.registration.reference import chosen_instance


def main(*, mask: Path, table: Path, truth: list[Path], shape: dict[str, Any], landmarks: Path, markups: Path,
         truth_out: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "reference_landmarks")
    ref = chosen_instance(read_table(table))
    points = sample_reference(read_volume(mask), shape["n_landmarks"], seed=shape["landmark_seed"])
    write_landmarks_csv(points, landmarks)
    write_slicer_markups(points, markups, name=f"{ref.structure}")
    own = [p for p in truth if Path(p).name == f"sub-{ref.subject}_landmarks.csv"]
    if own:
        ref_truth = true_points(pd.read_csv(own[0], encoding="utf-8"), ref.structure, mirrored=ref.mirrored)
    else:
        ref_truth = pd.DataFrame(columns=["index", "x", "y", "z"])
    write_landmarks_csv(ref_truth, truth_out)
    logger.info("%d landmarks on the surface of %s (%s); %d true landmarks", len(points), ref.key, mask,
                len(ref_truth))


if __name__ == "__main__":
    main(mask=Path(snakemake.input.mask), table=Path(snakemake.input.table),  # noqa: F821
         truth=[Path(p) for p in snakemake.input.truth], shape=dict(snakemake.params.shape),  # noqa: F821
         landmarks=Path(snakemake.output.landmarks), markups=Path(snakemake.output.markups),  # noqa: F821
         truth_out=Path(snakemake.output.truth), log=snakemake.log[0])  # noqa: F821
