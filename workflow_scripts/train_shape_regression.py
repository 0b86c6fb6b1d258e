"""Rule train_shape_regression: a fold's shape regression network of one bone or the whole volume (resumes)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.shape_method import ShapeFittingSpec
from mskseg.workflow.logs import setup_logging


def main(*, spec: ShapeFittingSpec, part: str, bones: list[str], values: list[int] | None,
         shape_models: list[Path], subjects: dict[str, list[str]], files: dict[str, list[Path]], workdir: Path,
         model: Path, info: Path, history: Path, threads: int = 1, log: Path | None = None) -> None:
    logger = setup_logging(log, "train_shape_regression")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.shape_fitting_train import regression_fold

    set_threads(threads)
    logger.info("method %s, part %s (bones %s)", spec.name, part, bones)
    regression_fold(spec, part, bones, values, shape_models, subjects, files, workdir, model=model, info=info,
                    history=history, logger=logger)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    from mskseg.workflow.shape_fitting import spec_from_params

    main(spec=spec_from_params(sm.wildcards.method, sm.params.settings), part=sm.wildcards.part,
         bones=list(sm.params.part["bones"]), values=sm.params.part["values"],
         shape_models=[Path(p) for p in sm.input.shape_models], subjects=dict(sm.params.subjects),
         files={k: list(v) for k, v in sm.input.items() if k.startswith(("train_", "val_"))},
         workdir=Path(sm.params.workdir), model=Path(sm.output.model), info=Path(sm.output.info),
         history=Path(sm.output.history), threads=sm.threads, log=sm.log[0])
