"""Rule pretrain_model: pre-train one view's model on the poor labels of a fold's subjects (hip paper)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.logs import setup_logging


def main(*, method: str, view: str, fold: str, settings: dict, subjects: dict, images: list, masks: list,
         workdir: Path, model: Path, info: Path, history: Path, threads: int = 1, log: Path | None = None) -> None:
    logger = setup_logging(log, "pretrain_model")
    from mskseg.nn.device import set_threads
    from mskseg.nn.method import MethodSpec
    from mskseg.nn.recipe import train_view
    from mskseg.nn.runs import export_model, input_fingerprint, load_cases

    set_threads(threads)
    spec = MethodSpec.from_config(method, settings["method"]).pretraining()
    values = list(dict(settings["labels"]).values())
    names = list(subjects["train"]) + list(subjects["val"])
    cases = load_cases(names, images, masks, label_values=values)
    run_dir = Path(workdir) / ("pretrain-" + input_fingerprint(images + masks, {"settings": settings, "view": view}))
    logger.info("method %s, fold %s, view %s: pre-training on the poor labels of %d subjects; checkpoints in %s",
                method, fold, view, len(cases), run_dir)
    result, model_info = train_view(spec, view, cases, [], values, run_dir, logger=logger)
    export_model(result, model_info, model=model, info_path=info, history=history)
    logger.info("pre-trained for %d epochs; best %s %.4f at epoch %d", result.epochs_run, "train_loss",
                result.best_value, result.best_epoch)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(method=sm.wildcards.method, view=sm.wildcards.view, fold=sm.wildcards.fold, settings=dict(sm.params.settings),
         subjects=dict(sm.params.subjects), images=list(sm.input.image), masks=list(sm.input.poormask),
         workdir=Path(sm.params.workdir), model=Path(sm.output.model), info=Path(sm.output.info),
         history=Path(sm.output.history), threads=sm.threads, log=sm.log[0])
