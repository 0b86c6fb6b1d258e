"""Rule make_splits: patient-level splits of the subjects that passed QC (and have labels)."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_table, write_table
from mskseg.splits import make_splits, summarise
from mskseg.workflow.checkpoints import usable
from mskseg.workflow.logs import setup_logging


def main(*, subjects: Path, split: dict[str, Any], fixed_base: Path, splits: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "make_splits")
    table = read_table(subjects)
    keep = usable(table)
    excluded = set(table.loc[~keep, "subject"])
    result = make_splits(table[keep].reset_index(drop=True), split, fixed_base=fixed_base, excluded=excluded)
    write_table(result, splits)
    logger.info("%s split of %d subjects (%d excluded by QC or without label):\n%s", split.get("method", "kfold"),
                int(keep.sum()), len(excluded), summarise(result).to_string(index=False))


if __name__ == "__main__":
    main(subjects=Path(snakemake.input.subjects), split=dict(snakemake.params.split),  # noqa: F821
         fixed_base=Path(snakemake.params.fixed_base), splits=Path(snakemake.output.splits),  # noqa: F821
         log=snakemake.log[0])  # noqa: F821
