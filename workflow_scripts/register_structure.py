"""Rule register_structure: register one subject's structure to the reference (affine + demons or ANTs)."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401
import SimpleITK as sitk

from mskseg.io import read_volume
from mskseg.io.tables import write_json
from mskseg.io.volumes import to_sitk
from mskseg.registration import set_threads
from mskseg.registration.fields import write_field, write_transform
from mskseg.registration.pipeline import RegistrationSettings, register_to_reference
from mskseg.registration.trim import TrimSpec, short_message, trimmed_structure
from mskseg.workflow.logs import setup_logging


def main(*, mask: Path, reference: Path, subject: str, structure: str, mirrored: bool, shape: dict[str, Any],
         affine: Path, field: Path, record: Path, log: Path | None = None, threads: int = 1) -> None:
    logger = setup_logging(log, "register_structure")
    set_threads(threads)
    settings = RegistrationSettings.from_dict(shape)
    prepared = trimmed_structure(read_volume(mask), shape["labels"][structure], mirror=mirrored,
                                 trim=TrimSpec.from_dict(shape.get("trim")), name=f"{structure} of {mask}")
    if prepared.short:
        logger.warning("SHORT %s %s: %s (recorded; left out of the shape model)", subject, structure,
                       short_message(prepared.record))
    fixed = sitk.Cast(to_sitk(read_volume(reference)), sitk.sitkFloat32)
    result = register_to_reference(fixed, prepared.mask, settings)
    write_transform(result.affine, affine)
    write_field(result.field, field)
    done = {"subject": subject, "structure": structure, "mirrored": mirrored, "reference": str(reference),
            **result.record, **prepared.record, "settings": settings.to_dict()}
    write_json(record, done)
    if result.converged:
        logger.info("%s %s: Dice %.4f (affine %.4f), %.1f s", subject, structure, done["dice"],
                    done["dice_affine"], done["seconds"])
    else:
        logger.warning("NOT CONVERGED %s %s: %s (recorded; left out of the shape model)", subject, structure,
                       done["reason"])


if __name__ == "__main__":
    main(mask=Path(snakemake.input.mask), reference=Path(snakemake.input.reference),  # noqa: F821
         subject=snakemake.wildcards.subject, structure=snakemake.wildcards.structure,  # noqa: F821
         mirrored=bool(snakemake.params.mirrored), shape=dict(snakemake.params.shape),  # noqa: F821
         affine=Path(snakemake.output.affine), field=Path(snakemake.output.field),  # noqa: F821
         record=Path(snakemake.output.record), log=snakemake.log[0], threads=snakemake.threads)  # noqa: F821
