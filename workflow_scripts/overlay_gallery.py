"""Rule overlay_gallery: a scored method's test subjects as slices in each plane, worst and best cases first."""

from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from mskseg.reporting.gallery import GallerySettings, write_gallery
from mskseg.workflow.logs import setup_logging


def main(*, method: str, metrics: Path, subjects: list[str], images: list[Path], predictions: list[Path],
         references: list[Path], settings: dict, gallery: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "overlay_gallery")
    labels = {str(k): int(v) for k, v in settings["labels"].items()}
    chosen = GallerySettings(slices_per_plane=int(settings["slices_per_plane"]),
                             max_subjects=settings["max_subjects"], metric=str(settings["metric"]))
    frame = pd.read_csv(metrics, dtype={"subject": str}, keep_default_na=False, na_values=[""])
    written = write_gallery(gallery, method=method, metrics=frame, subjects=subjects, images=images,
                            predictions=predictions, references=references, label_names=labels, settings=chosen)
    logger.info("%d pictures of %d test subjects -> %s", len(written), len(subjects), gallery)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(method=sm.wildcards.method, metrics=Path(sm.input.metrics), subjects=list(sm.params.subjects),
         images=[Path(p) for p in sm.input.images], predictions=[Path(p) for p in sm.input.predictions],
         references=[Path(p) for p in sm.input.references], settings=dict(sm.params.settings),
         gallery=Path(sm.output.gallery), log=sm.log[0])
