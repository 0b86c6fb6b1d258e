"""Rule train_regularised: one fold's segmenter with SPAR or a baseline regulariser (resumes after a kill)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.method import MethodSpec
from mskseg.workflow.logs import setup_logging
from mskseg.workflow.segmentation import method_from_params


def main(*, spec: MethodSpec, labels: dict[str, int], view: str, fold: str, subjects: dict[str, list[str]],
         files: dict[str, list[Path]], autoencoder_weights: Path, autoencoder_info: Path, workdir: Path,
         model: Path, info: Path, history: Path, curve: Path, latents: Path, threads: int = 1,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "train_regularised")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.spar_train import train_regularised_fold
    from mskseg.nn.training import ModelFiles

    set_threads(threads)
    logger.info("method %s (%s), fold %s, view %s", spec.name, spec.regularisation.regulariser, fold, view)
    train_regularised_fold(spec, view, labels, subjects, files, workdir,
                           ModelFiles(model=model, info=info, history=history, curve=curve),
                           autoencoder_weights=autoencoder_weights, autoencoder_info=autoencoder_info,
                           latents_out=latents, title=f"{spec.name} fold {fold} {view}", logger=logger)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    spec, labels = method_from_params(sm.wildcards.method, sm.params.settings)
    main(spec=spec, labels=labels, view=sm.wildcards.view, fold=sm.wildcards.fold, subjects=dict(sm.params.subjects),
         files={k: list(v) for k, v in sm.input.items() if not k.startswith("autoencoder_")},
         autoencoder_weights=Path(sm.input.autoencoder_weights), autoencoder_info=Path(sm.input.autoencoder_info),
         workdir=Path(sm.params.workdir), model=Path(sm.output.model), info=Path(sm.output.info),
         history=Path(sm.output.history), curve=Path(sm.output.curve), latents=Path(sm.output.latents),
         threads=sm.threads, log=sm.log[0])
