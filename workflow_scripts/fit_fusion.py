"""Rule fit_fusion: three-plane fusion weights fitted on a fold's validation subjects (Luan et al.)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.method import MethodSpec
from mskseg.workflow.logs import setup_logging
from mskseg.workflow.segmentation import method_from_params


def main(*, spec: MethodSpec, labels: dict[str, int], images: list[Path], masks: list[Path], models: list[Path],
         infos: list[Path], weights: Path, grid: Path, threads: int = 1, log: Path | None = None) -> None:
    logger = setup_logging(log, "fit_fusion")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.training import fit_fold_fusion

    set_threads(threads)
    views, fit = fit_fold_fusion(spec, labels, images, masks, models, infos, weights=weights, grid=grid)
    logger.info("fusion weights %s: mean validation Dice %.4f on %d subjects", dict(zip(views, fit.weights,
                strict=True)), fit.dice, len(images))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    spec, labels = method_from_params(sm.wildcards.method, sm.params.settings)
    main(spec=spec, labels=labels, images=list(sm.input.image), masks=list(sm.input.mask),
         models=list(sm.input.models), infos=list(sm.input.infos), weights=Path(sm.output.weights),
         grid=Path(sm.output.grid), threads=sm.threads, log=sm.log[0])
