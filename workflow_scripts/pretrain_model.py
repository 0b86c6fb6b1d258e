"""Rule pretrain_model: pre-train one view's model on the poor labels of a fold's subjects (hip paper)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.method import MethodSpec
from mskseg.workflow.logs import setup_logging
from mskseg.workflow.segmentation import method_from_params


def main(*, spec: MethodSpec, labels: dict[str, int], view: str, fold: str, subjects: dict[str, list[str]],
         images: list[Path], masks: list[Path], workdir: Path, model: Path, info: Path, history: Path,
         threads: int = 1, log: Path | None = None) -> None:
    logger = setup_logging(log, "pretrain_model")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.training import ModelFiles, pretrain_fold

    set_threads(threads)
    logger.info("method %s, fold %s, view %s", spec.name, fold, view)
    pretrain_fold(spec, view, labels, [*subjects["train"], *subjects["val"]], images, masks, workdir,
                  ModelFiles(model=model, info=info, history=history), logger=logger)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    spec, labels = method_from_params(sm.wildcards.method, sm.params.settings)
    main(spec=spec, labels=labels, view=sm.wildcards.view, fold=sm.wildcards.fold, subjects=dict(sm.params.subjects),
         images=list(sm.input.image), masks=list(sm.input.poormask), workdir=Path(sm.params.workdir),
         model=Path(sm.output.model), info=Path(sm.output.info), history=Path(sm.output.history),
         threads=sm.threads, log=sm.log[0])
