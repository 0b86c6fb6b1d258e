"""Rule select_reference: score every subject's structure as a reference and write the chosen one."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io import read_volume, write_volume
from mskseg.io.tables import write_table
from mskseg.io.volumes import from_sitk
from mskseg.logs import setup_logging
from mskseg.registration import set_threads
from mskseg.registration.masks import crop_to_structure, structure_mask, working_image
from mskseg.registration.reference import Instance, chosen_instance, select_reference


def main(*, masks: list[Path], subjects: list[str], members: list[list[Any]], shape: dict[str, Any],
         table: Path, image: Path, mask: Path, log: Path | None = None, threads: int = 1) -> None:
    logger = setup_logging(log, "select_reference")
    set_threads(threads)
    if len(masks) != len(subjects):
        raise ValueError(f"{len(masks)} masks for {len(subjects)} subjects")
    paths = dict(zip(subjects, masks, strict=True))
    labels = shape["labels"]
    instances = [Instance(s, str(st), bool(m)) for s in subjects for st, m in members]
    cache: dict[str, Any] = {}

    def load(inst: Instance) -> Any:
        if inst.subject not in cache:
            cache.clear()
            cache[inst.subject] = read_volume(paths[inst.subject])
        return structure_mask(cache[inst.subject], labels[inst.structure], mirror=inst.mirrored,
                              name=f"{inst.structure} of {paths[inst.subject]}")

    scores = select_reference(instances, load, spacing_mm=shape["selection_spacing_mm"],
                              margin_mm=shape["margin_mm"], forced=shape.get("reference"))
    write_table(scores, table)
    ref = chosen_instance(scores)
    binary = load(ref)
    # at least two voxels of background around the bone, so that only a real cut by the field of
    # view touches the border of the written mask (landmarks are not sampled on such cuts)
    write_volume(crop_to_structure(binary, max(shape["margin_mm"], 2 * max(binary.spacing)), pad=False), mask)
    fixed = working_image(binary, shape["working_spacing_mm"], shape["margin_mm"])
    write_volume(from_sitk(fixed), image)
    logger.info("reference %s%s; working grid %s at %.2f mm\n%s", ref.key, " (mirrored)" if ref.mirrored else "",
                fixed.GetSize(), shape["working_spacing_mm"], scores.head(10).to_string(index=False))


if __name__ == "__main__":
    main(masks=[Path(p) for p in snakemake.input.masks], subjects=list(snakemake.params.subjects),  # noqa: F821
         members=list(snakemake.params.members), shape=dict(snakemake.params.shape),  # noqa: F821
         table=Path(snakemake.output.table), image=Path(snakemake.output.image),  # noqa: F821
         mask=Path(snakemake.output.mask), log=snakemake.log[0], threads=snakemake.threads)  # noqa: F821
