"""Rule evaluate_subject: every metric of one subject's prediction against its reference mask."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import write_table
from mskseg.io.volumes import read_volume
from mskseg.metrics.evaluate import EvaluationSettings, evaluate_pair
from mskseg.workflow.logs import setup_logging


def main(*, prediction: Path, reference: Path, metrics: Path, confusion: Path, fov: Path, labels: dict,
         settings: dict, log: Path | None = None) -> None:
    logger = setup_logging(log, "evaluate_subject")
    options = dict(settings)
    axis = options.pop("fov_axis", None)
    result = evaluate_pair(read_volume(prediction), read_volume(reference), dict(labels),
                           EvaluationSettings(**options), pred_name=str(prediction), ref_name=str(reference),
                           fov_axis=axis)
    write_table(result.table, metrics)
    write_table(result.confusion.reset_index(), confusion)
    write_table(result.fov, fov)
    for _, row in result.table.iterrows():
        if row.get("surface_flag") not in (None, "ok") and row["structure"] != "all":
            logger.warning("%s: %s (%s): distances undefined", prediction, row["structure"], row["surface_flag"])
    logger.info("%s vs %s:\n%s", prediction, reference, result.table[["structure", "dice", "hd_mm", "assd_mm"]]
                .to_string(index=False))


if __name__ == "__main__":
    main(prediction=Path(snakemake.input.prediction), reference=Path(snakemake.input.reference),  # noqa: F821
         metrics=Path(snakemake.output.metrics), confusion=Path(snakemake.output.confusion),  # noqa: F821
         fov=Path(snakemake.output.fov), labels=dict(snakemake.params.labels),  # noqa: F821
         settings=dict(snakemake.params.settings), log=snakemake.log[0])  # noqa: F821
