"""Rule train_model: train one view's model of a trained method on a fold (resumes after a kill)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.method import MethodSpec
from mskseg.workflow.logs import setup_logging
from mskseg.workflow.paths import optional_input
from mskseg.workflow.segmentation import method_from_params


def main(*, spec: MethodSpec, labels: dict[str, int], view: str, fold: str, subjects: dict[str, list[str]],
         files: dict[str, list[Path]], workdir: Path, model: Path, info: Path, history: Path, curve: Path,
         rounds: Path, round_weights: Path | None = None, threads: int = 1, pretrained: Path | None = None,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "train_model")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.training import ModelFiles, train_fold

    set_threads(threads)
    logger.info("method %s, fold %s, view %s", spec.name, fold, view)
    train_fold(spec, view, labels, subjects, files, workdir,
               ModelFiles(model=model, info=info, history=history, curve=curve, rounds=rounds,
                          round_weights=round_weights),
               pretrained=pretrained, title=f"{spec.name} fold {fold} {view}", logger=logger)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    spec, labels = method_from_params(sm.wildcards.method, sm.params.settings)
    main(spec=spec, labels=labels, view=sm.wildcards.view, fold=sm.wildcards.fold, subjects=dict(sm.params.subjects),
         files={k: list(v) for k, v in sm.input.items() if k != "pretrained"}, workdir=Path(sm.params.workdir),
         model=Path(sm.output.model), info=Path(sm.output.info), history=Path(sm.output.history),
         curve=Path(sm.output.curve), rounds=Path(sm.output.rounds), round_weights=Path(sm.output.round_weights),
         threads=sm.threads,
         pretrained=optional_input(sm.input, "pretrained"), log=sm.log[0])
