"""Rule volume_reference: the training masks' volumes per structure and the images' median spacing."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.workflow.logs import setup_logging


def main(*, masks: list[Path], images: list[Path], labels: dict[str, int], volumes: Path,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "volume_reference")
    from mskseg.nn.segment import volume_reference_file  # imported here: torch is slow to import

    out = volume_reference_file(masks, images, labels, volumes)
    logger.info("%d training masks: %s; median spacing %s mm", len(masks),
                {s: round(v["mean_mm3"]) for s, v in out["structures"].items()}, out["spacing_mm"])


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(masks=list(sm.input.masks), images=list(sm.input.images), labels=dict(sm.params.labels),
         volumes=Path(sm.output.volumes), log=sm.log[0])
