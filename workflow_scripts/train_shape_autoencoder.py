"""Rule train_shape_autoencoder: SPAR's shape auto-encoder on the mask slices of a fold's training subjects."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.spar_settings import SparSettings
from mskseg.workflow.logs import setup_logging


def main(*, settings: SparSettings, seed: int, labels: dict[str, int], view: str, subjects: list[str],
         masks: list[Path], workdir: Path, weights: Path, info: Path, history: Path, threads: int = 1,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "train_shape_autoencoder")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.spar_train import train_autoencoder_fold

    set_threads(threads)
    done = train_autoencoder_fold(view, labels, subjects, masks, settings, seed=seed, slice_size=None,
                                  workdir=workdir, weights_out=weights, info_out=info, history_out=history,
                                  logger=logger)
    logger.info("auto-encoder %s on %d subjects: reconstruction Dice %.4f -> %s", done.key, len(subjects),
                done.recon_dice, weights)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    params = dict(sm.params.settings)
    main(settings=SparSettings.from_dict(params["settings"]), seed=int(params["seed"]), labels=dict(params["labels"]),
         view=sm.wildcards.view, subjects=list(params["subjects"]), masks=[Path(p) for p in sm.input.masks],
         workdir=Path(sm.params.workdir), weights=Path(sm.output.weights), info=Path(sm.output.info),
         history=Path(sm.output.history), threads=sm.threads, log=sm.log[0])
