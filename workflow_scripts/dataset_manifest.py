"""Rule dataset_manifest: the dataset's manifest as the workflow reads it."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io.manifest import write_manifest
from mskseg.workflow.logs import setup_logging
from mskseg.workflow.plan import dataset_manifest


def main(*, name: str, dataset: dict[str, Any], manifest: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "dataset_manifest")
    frame = dataset_manifest(name, dataset)
    write_manifest(frame, manifest)
    logger.info("%s: %d subjects, %d patients, %d with a label", name, len(frame),
                frame["patient"].nunique(), int((frame["label"] != "").sum()))


if __name__ == "__main__":
    main(name=snakemake.wildcards.dataset, dataset=snakemake.params.dataset,  # noqa: F821
         manifest=Path(snakemake.output.manifest), log=snakemake.log[0])  # noqa: F821
