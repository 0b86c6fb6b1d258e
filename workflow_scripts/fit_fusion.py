"""Rule fit_fusion: three-plane fusion weights fitted on a fold's validation subjects (Luan et al.)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.logs import setup_logging


def main(*, method: str, settings: dict, images: list, masks: list, models: list, infos: list, weights: Path,
         grid: Path, threads: int = 1, log: Path | None = None) -> None:
    logger = setup_logging(log, "fit_fusion")
    from mskseg.io.atomic import atomic_path
    from mskseg.nn import device as dev
    from mskseg.nn.fusion import fit_fusion_weights, write_fusion_weights
    from mskseg.nn.method import MethodSpec
    from mskseg.nn.recipe import load_trained, predict_view
    from mskseg.nn.runs import load_cases

    dev.set_threads(threads)
    spec = MethodSpec.from_config(method, settings["method"])
    values = list(dict(settings["labels"]).values())
    if not images:
        raise ValueError(f"method {method}: the fold has no validation subjects to fit the fusion weights on")
    cases = load_cases([Path(p).name for p in images], images, masks, label_values=values)
    device = dev.resolve_device(spec.inference["device"])
    precision = dev.resolve_precision(device, spec.inference["precision"])
    trained = [load_trained(m, i, device) for m, i in zip(models, infos)]
    probs = [[predict_view(model, info, case, device=device, precision=precision,
                           channels_last=dev.use_channels_last(device), batch_size=int(spec.inference["batch_size"]))
              for model, info in trained] for case in cases]
    fit = fit_fusion_weights(probs, [c.target for c in cases], step=spec.fusion_step)
    views = [info.view for _, info in trained]
    write_fusion_weights(weights, views, fit)
    with atomic_path(grid) as tmp:
        fit.grid.to_csv(tmp, index=False)
    logger.info("fusion weights %s: mean validation Dice %.4f on %d subjects", dict(zip(views, fit.weights)),
                fit.dice, len(cases))


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(method=sm.wildcards.method, settings=dict(sm.params.settings), images=list(sm.input.image),
         masks=list(sm.input.mask), models=list(sm.input.models), infos=list(sm.input.infos),
         weights=Path(sm.output.weights), grid=Path(sm.output.grid), threads=sm.threads, log=sm.log[0])
