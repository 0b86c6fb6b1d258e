"""Rule qc_subject: run every quality check on one subject and record the outcome."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import write_table
from mskseg.qc import QCSettings, check_subject, records_frame
from mskseg.workflow.logs import setup_logging


class QCFailure(RuntimeError):
    """Raised when qc.fatal is set and a subject fails a check."""


def main(*, subject: str, image: str, label: str, settings: QCSettings, fatal: bool, records: Path,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "qc_subject")
    found, _, _ = check_subject(subject, image, label or None, settings)
    frame = records_frame(found)
    for row in frame.itertuples():
        level = 30 if row.status == "fail" else 20
        logger.log(level, "%s %s: %s %s", subject, row.check, row.status, row.detail)
    failed = frame[frame["status"] == "fail"]
    if fatal and len(failed):
        raise QCFailure(f"subject {subject} failed quality control (qc.fatal is set): "
                        + "; ".join(f"{c}: {d}" for c, d in zip(failed["check"], failed["detail"], strict=True)))
    write_table(frame, records)


if __name__ == "__main__":
    main(subject=snakemake.wildcards.subject, image=snakemake.params.paths["image"],  # noqa: F821
         label=snakemake.params.paths["label"],  # noqa: F821
         settings=QCSettings.from_dict(snakemake.params.settings), fatal=snakemake.params.fatal,  # noqa: F821
         records=Path(snakemake.output.records), log=snakemake.log[0])  # noqa: F821
