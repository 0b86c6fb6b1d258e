"""Rule shape_model: Procrustes + PCA of one fold's training landmarks, with its quality report."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_table, write_table
from mskseg.shape import fit_shape_model, plot_modes, plot_quality, quality_table, save_shape_model
from mskseg.shape.inputs import fold_shapes
from mskseg.workflow.logs import setup_logging


def main(*, correspondence: Path, splits: Path, landmarks: list[Path], shape: dict[str, Any], dataset: str,
         bone: str, fold: str, model: Path, header: Path, quality: Path, quality_png: Path, quality_svg: Path,
         modes: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "shape_model")
    keys, shapes, left_out = fold_shapes(read_table(correspondence), read_table(splits), landmarks, fold=fold,
                                         roles=shape["model_roles"])
    for key, why in left_out.items():
        logger.info("not in the model: %s (%s)", key, why)
    meta = {"dataset": dataset, "bone": bone, "fold": fold, "roles": list(shape["model_roles"]),
            "left_out": left_out}
    fitted = fit_shape_model(shapes, keys, scale=shape["procrustes_scale"], n_modes=shape["n_modes"],
                             variance_kept=shape["variance_kept"], metadata=meta)
    save_shape_model(fitted, model, header)
    q = shape["quality"]
    table = quality_table(fitted, shapes, n_samples=q["n_samples"], seed=q["seed"], max_modes=q["max_modes"])
    write_table(table, quality)
    title = f"{dataset} {bone}, fold {fold} ({len(keys)} shapes)"
    plot_quality(table, quality_png, quality_svg, title=title)
    plot_modes(fitted, modes, n_modes=3, sd=3.0, title=title)
    logger.info("%s: %d shapes x %d landmarks, %d modes; first modes explain %s", title, len(keys),
                shapes.shape[1], fitted.n_modes, [round(float(v), 3) for v in fitted.explained_ratio[:5]])


if __name__ == "__main__":
    main(correspondence=Path(snakemake.input.correspondence), splits=Path(snakemake.input.splits),  # noqa: F821
         landmarks=[Path(p) for p in snakemake.input.landmarks], shape=dict(snakemake.params.shape),  # noqa: F821
         dataset=snakemake.wildcards.dataset, bone=snakemake.wildcards.bone,  # noqa: F821
         fold=snakemake.wildcards.fold, model=Path(snakemake.output.model),  # noqa: F821
         header=Path(snakemake.output.header), quality=Path(snakemake.output.quality),  # noqa: F821
         quality_png=Path(snakemake.output.quality_png), quality_svg=Path(snakemake.output.quality_svg),  # noqa: F821
         modes=Path(snakemake.output.modes), log=snakemake.log[0])  # noqa: F821
