"""Rule train_model: train one view's model of a trained method on a fold (resumes after a kill)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.logs import setup_logging


def main(*, method: str, view: str, fold: str, settings: dict, subjects: dict, files: dict, workdir: Path,
         model: Path, info: Path, history: Path, curve: Path, rounds: Path, threads: int = 1,
         pretrained: Path | None = None, log: Path | None = None) -> None:
    logger = setup_logging(log, "train_model")
    from mskseg.nn.device import set_threads
    from mskseg.nn.method import MethodSpec
    from mskseg.nn.runs import export_model, input_fingerprint, load_cases, run_training

    set_threads(threads)
    spec = MethodSpec.from_config(method, settings["method"])
    labels = dict(settings["labels"])
    values = list(labels.values())
    cases = {role: load_cases(subjects[role], files[f"{role}_image"], files[f"{role}_mask"],
                              files.get(f"{role}_weight") or None, label_values=values) for role in ("train", "val")}
    inputs = [p for key in sorted(files) for p in files[key]] + ([pretrained] if pretrained else [])
    run_dir = Path(workdir) / input_fingerprint(inputs, {"settings": settings, "subjects": subjects, "view": view})
    logger.info("method %s, fold %s, view %s: %d training and %d validation subjects; checkpoints in %s", method,
                fold, view, len(cases["train"]), len(cases["val"]), run_dir)
    result, model_info, table = run_training(spec, view, cases["train"], cases["val"], labels, run_dir,
                                             init_weights=pretrained, logger=logger)
    export_model(result, model_info, model=model, info_path=info, history=history, curve=curve, rounds=table,
                 rounds_path=rounds, title=f"{method} fold {fold} {view}")
    logger.info("best epoch %d (%s %.4f) of %d; model %s", result.best_epoch, spec.train.get("monitor", "val_dice"),
                result.best_value, result.epochs_run, model)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(method=sm.wildcards.method, view=sm.wildcards.view, fold=sm.wildcards.fold, settings=dict(sm.params.settings),
         subjects=dict(sm.params.subjects),
         files={k: list(v) for k, v in sm.input.items() if k != "pretrained"},
         workdir=Path(sm.params.workdir), model=Path(sm.output.model), info=Path(sm.output.info),
         history=Path(sm.output.history), curve=Path(sm.output.curve), rounds=Path(sm.output.rounds),
         threads=sm.threads, pretrained=Path(sm.input.pretrained) if "pretrained" in sm.input.keys() else None,
         log=sm.log[0])
