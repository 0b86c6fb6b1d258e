"""Rule correspondence_table: every subject's correspondence quality for one shape model in one table."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import gather, read_table, write_table
from mskseg.landmarks.summary import summarise_correspondence
from mskseg.registration.reference import chosen_instance
from mskseg.workflow.logs import setup_logging


def main(*, tables: list[Path], reference: Path, structures: list[str], table: Path,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "correspondence_table")
    frame = gather([read_table(p) for p in tables])
    frame = frame[frame["structure"].isin(structures)].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"no record of {', '.join(structures)} in {', '.join(map(str, tables))}")
    ref = chosen_instance(read_table(reference))
    summary = summarise_correspondence(frame, ref)
    write_table(summary.table, table)
    for subject, structure, why in summary.excluded:
        logger.warning("EXCLUDED %s %s: %s", subject, structure, why)
    logger.info("%d of %d instances enter the models; mean over %d of them (the reference %s, registered to "
                "itself, listed but not counted):\n%s", len(frame) - len(summary.excluded), len(frame),
                summary.counted, ref.key, summary.means.to_string())


if __name__ == "__main__":
    main(tables=[Path(p) for p in snakemake.input.tables], reference=Path(snakemake.input.reference),  # noqa: F821
         structures=list(snakemake.params.structures), table=Path(snakemake.output.table),  # noqa: F821
         log=snakemake.log[0])  # noqa: F821
