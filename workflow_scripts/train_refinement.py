"""Rule train_refinement: a fold's refinement landmarks and local 3D U-Net (resumes after a kill)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.shape_method import ShapeFittingSpec
from mskseg.workflow.logs import setup_logging


def main(*, spec: ShapeFittingSpec, labels: dict[str, int], bones: dict[str, int], shape_models: list[Path],
         subjects: dict[str, list[str]], files: dict[str, list[Path]], workdir: Path, model: Path, info: Path,
         history: Path, selection: Path, threads: int = 1, log: Path | None = None) -> None:
    logger = setup_logging(log, "train_refinement")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.shape_fitting_train import refinement_export

    set_threads(threads)
    logger.info("method %s: refinement on %d training subjects", spec.name, len(subjects["train"]))
    refinement_export(spec, labels, bones, shape_models, subjects, files, workdir, model=model, info=info,
                      history=history, selection=selection, logger=logger)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    from mskseg.workflow.shape_fitting import spec_from_params

    main(spec=spec_from_params(sm.wildcards.method, sm.params.settings), labels=dict(sm.params.settings["labels"]),
         bones=dict(sm.params.bones), shape_models=[Path(p) for p in sm.input.shape_models],
         subjects=dict(sm.params.subjects),
         files={k: list(v) for k, v in sm.input.items() if k.startswith(("train_", "val_"))},
         workdir=Path(sm.params.workdir), model=Path(sm.output.model), info=Path(sm.output.info),
         history=Path(sm.output.history), selection=Path(sm.output.selection), threads=sm.threads, log=sm.log[0])
