"""Rule predict_subject: a test subject's label map by its fold's trained model(s)."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.nn.settings import InferenceSettings
from mskseg.postprocess import PostprocessSettings
from mskseg.workflow.logs import setup_logging
from mskseg.workflow.paths import optional_input


def main(*, subject: str, image: Path, models: list[Path], infos: list[Path], settings: InferenceSettings,
         labels: dict[str, int], prediction: Path, record: Path, threads: int = 1, fusion: Path | None = None,
         postprocess: PostprocessSettings | None = None, probabilities: Path | None = None,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "predict_subject")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.predict import predict_subject

    set_threads(threads)
    done = predict_subject(subject, image, models, infos, settings, labels, prediction=prediction, record=record,
                           fusion=fusion, postprocess=postprocess, probabilities=probabilities, logger=logger)
    logger.info("%s: predicted with %d model(s) in %.2f s -> %s", subject, len(models), done["seconds"], prediction)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    params = dict(sm.params.settings)
    main(subject=sm.wildcards.subject, image=Path(sm.input.image), models=list(sm.input.models),
         infos=list(sm.input.infos), settings=InferenceSettings.from_dict(params["inference"]),
         labels=dict(params["labels"]), prediction=Path(sm.output.prediction), record=Path(sm.output.record),
         probabilities=Path(sm.output.probabilities),
         threads=params["threads"], fusion=optional_input(sm.input, "fusion"),
         postprocess=PostprocessSettings.from_dict(params["postprocess"]) if params.get("postprocess") else None,
         log=sm.log[0])
