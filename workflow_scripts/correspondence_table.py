"""Rule correspondence_table: every subject's correspondence quality for one shape model in one table."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import gather, read_table, write_table
from mskseg.workflow.checkpoints import flag
from mskseg.workflow.logs import setup_logging


def main(*, tables: list[Path], structures: list[str], table: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "correspondence_table")
    frame = gather([read_table(p) for p in tables])
    frame = frame[frame["structure"].isin(structures)].reset_index(drop=True)
    if frame.empty:
        raise ValueError(f"no record of {', '.join(structures)} in {', '.join(map(str, tables))}")
    write_table(frame, table)
    converged = flag(frame["converged"])
    for _, row in frame[~converged].iterrows():
        logger.warning("EXCLUDED %s %s: registration did not converge (%s)", row["subject"], row["structure"],
                       row.get("reason"))
    ok = frame[converged]
    cols = [c for c in ("dice", "surface_mean_mm", "surface_p95_mm", "surface_max_mm", "surface_mean_voxels",
                        "truth_mean_mm", "truth_p95_mm", "truth_max_mm") if c in ok]
    logger.info("%d of %d registrations converged; mean over them:\n%s", len(ok), len(frame),
                ok[cols].mean().to_string())


if __name__ == "__main__":
    main(tables=[Path(p) for p in snakemake.input.tables], structures=list(snakemake.params.structures),  # noqa: F821
         table=Path(snakemake.output.table), log=snakemake.log[0])  # noqa: F821
