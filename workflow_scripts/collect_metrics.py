"""Rule collect_metrics: one method's batch tables merged into its per-subject metrics, confusion and per-slice Dice."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_table, write_table
from mskseg.metrics.collect import Collected, merge
from mskseg.workflow.logs import setup_logging


def main(*, tables: list[Path], confusions: list[Path], fovs: list[Path], method: str, table: Path,
         confusion: Path, fov: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "collect_metrics")
    out = merge([Collected(metrics=read_table(m), confusion=read_table(c), fov=read_table(f))
                 for m, c, f in zip(tables, confusions, fovs, strict=True)])
    write_table(out.metrics, table)
    write_table(out.confusion, confusion)
    write_table(out.fov, fov)
    logger.info("%s: %d subjects from %d batches; mean Dice per structure:\n%s", method,
                out.metrics["subject"].nunique(), len(tables),
                out.metrics.groupby("structure", sort=False)["dice"].mean().to_string())


if __name__ == "__main__":
    main(tables=[Path(p) for p in snakemake.input.tables],  # noqa: F821
         confusions=[Path(p) for p in snakemake.input.confusions],  # noqa: F821
         fovs=[Path(p) for p in snakemake.input.fovs], method=snakemake.wildcards.method,  # noqa: F821
         table=Path(snakemake.output.table), confusion=Path(snakemake.output.confusion),  # noqa: F821
         fov=Path(snakemake.output.fov), log=snakemake.log[0])  # noqa: F821
