"""Rule select_reference: score every subject's structure as a reference and write the chosen one."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io import write_volume
from mskseg.io.tables import write_table
from mskseg.registration import set_threads
from mskseg.registration.reference import choose_reference
from mskseg.registration.trim import TrimSpec
from mskseg.workflow.logs import setup_logging


def main(*, masks: list[Path], subjects: list[str], members: list[list[Any]], shape: dict[str, Any],
         table: Path, image: Path, mask: Path, log: Path | None = None, threads: int = 1) -> None:
    logger = setup_logging(log, "select_reference")
    set_threads(threads)
    if len(masks) != len(subjects):
        raise ValueError(f"{len(masks)} masks for {len(subjects)} subjects")
    choice = choose_reference(dict(zip(subjects, masks, strict=True)), [(s, bool(m)) for s, m in members],
                              shape["labels"], selection_spacing_mm=shape["selection_spacing_mm"],
                              working_spacing_mm=shape["working_spacing_mm"], margin_mm=shape["margin_mm"],
                              forced=shape.get("reference"), trim=TrimSpec.from_dict(shape.get("trim")))
    write_table(choice.scores, table)
    write_volume(choice.mask, mask)
    write_volume(choice.working, image)
    logger.info("reference %s%s; working grid %s at %.2f mm\n%s", choice.instance.key,
                " (mirrored)" if choice.instance.mirrored else "", choice.working.shape, shape["working_spacing_mm"],
                choice.scores.head(10).to_string(index=False))


if __name__ == "__main__":
    main(masks=[Path(p) for p in snakemake.input.masks], subjects=list(snakemake.params.subjects),  # noqa: F821
         members=list(snakemake.params.members), shape=dict(snakemake.params.shape),  # noqa: F821
         table=Path(snakemake.output.table), image=Path(snakemake.output.image),  # noqa: F821
         mask=Path(snakemake.output.mask), log=snakemake.log[0], threads=snakemake.threads)  # noqa: F821
