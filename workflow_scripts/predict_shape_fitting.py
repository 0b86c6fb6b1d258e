"""Rule predict_shape_fitting: a test subject's label map and fitted landmarks by its fold, timed per step."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.shape_method import ShapeFittingSpec
from mskseg.postprocess import PostprocessSettings
from mskseg.workflow.logs import setup_logging


def main(*, subject: str, image: Path, spec: ShapeFittingSpec, labels: dict[str, int], models: dict[str, object],
         prediction: Path, record: Path, landmarks: Path, postprocess: PostprocessSettings | None = None,
         threads: int = 1, log: Path | None = None) -> None:
    logger = setup_logging(log, "predict_shape_fitting")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.shape_fitting import predict_subject_files

    set_threads(threads)
    predict_subject_files(subject, image, spec, labels, models=models, prediction=prediction, record=record,
                          landmarks=landmarks, postprocess=postprocess, logger=logger)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    from mskseg.workflow.paths import optional_input
    from mskseg.workflow.shape_fitting import spec_from_params

    params = dict(sm.params.settings)
    spec = spec_from_params(sm.wildcards.method, params)
    refinement = optional_input(sm.input, "refinement")
    models = {"presegmentation": (Path(sm.input.pre_model), Path(sm.input.pre_info)),
              "regressions": list(zip(sm.input.regressions, sm.input.regression_infos, strict=True)),
              "shape_models": dict(zip(spec.bones, sm.input.shape_models, strict=True)),
              "refinement": (refinement, Path(sm.input.refinement_info)) if refinement else None,
              "selection": optional_input(sm.input, "selection")}
    main(subject=sm.wildcards.subject, image=Path(sm.input.image), spec=spec, labels=dict(params["labels"]),
         models=models, prediction=Path(sm.output.prediction), record=Path(sm.output.record),
         landmarks=Path(sm.output.landmarks),
         postprocess=PostprocessSettings.from_dict(params["postprocess"]) if params.get("postprocess") else None,
         threads=sm.threads, log=sm.log[0])
