"""Rule perturb_prediction: a seeded, perturbed copy of a subject's reference mask as a stand-in prediction."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import write_json
from mskseg.io.volumes import read_volume, write_volume
from mskseg.synthetic.perturb import PerturbSettings, perturb_labels
from mskseg.workflow.logs import setup_logging


def main(*, mask: Path, prediction: Path, record: Path, subject: str, settings: dict, log: Path | None = None) -> None:
    logger = setup_logging(log, "perturb_prediction")
    s = PerturbSettings(**settings)
    write_volume(perturb_labels(read_volume(mask), s, subject), prediction)
    write_json(record, {"subject": subject, "source": str(mask), "settings": settings})
    logger.info("%s: perturbed %s with %s", subject, mask, s)


if __name__ == "__main__":
    main(mask=Path(snakemake.input.mask), prediction=Path(snakemake.output.prediction),  # noqa: F821
         record=Path(snakemake.output.record), subject=snakemake.wildcards.subject,  # noqa: F821
         settings=dict(snakemake.params.settings), log=snakemake.log[0])  # noqa: F821
