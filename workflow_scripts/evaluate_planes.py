"""Rule evaluate_planes: a three-plane method's fold scored per plane and fused on its test subjects."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import write_table
from mskseg.metrics.evaluate import EvaluationSettings
from mskseg.nn.settings import InferenceSettings
from mskseg.postprocess import PostprocessSettings
from mskseg.workflow.logs import setup_logging


def main(*, models: list[Path], infos: list[Path], fusion: Path, subjects: list[str], images: list[Path],
         masks: list[Path], inference: InferenceSettings, labels: dict[str, int], evaluation: EvaluationSettings,
         scores: Path, confusions: Path, threads: int = 1, postprocess: PostprocessSettings | None = None,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "evaluate_planes")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.fusion import read_fusion_weights
    from mskseg.nn.plane_eval import evaluate_planes

    set_threads(threads)
    table, confusion = evaluate_planes(list(zip(models, infos, strict=True)), read_fusion_weights(fusion), subjects,
                                       images, masks, inference=inference, labels=labels, evaluation=evaluation,
                                       postprocess=postprocess, logger=logger)
    write_table(table, scores)
    write_table(confusion, confusions)
    logger.info("%d test subjects x %d planes scored -> %s", len(subjects), table["plane"].nunique(), scores)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    params = dict(sm.params.inference)
    settings = dict(sm.params.evaluation)
    settings.pop("fov_axis", None)  # no per-slice curves for the plane scores
    main(models=[Path(p) for p in sm.input.models], infos=[Path(p) for p in sm.input.infos],
         fusion=Path(sm.input.fusion), subjects=list(sm.params.subjects), images=[Path(p) for p in sm.input.images],
         masks=[Path(p) for p in sm.input.masks], inference=InferenceSettings.from_dict(params["inference"]),
         labels=dict(params["labels"]), evaluation=EvaluationSettings(**settings), scores=Path(sm.output.scores),
         confusions=Path(sm.output.confusions), threads=params["threads"],
         postprocess=PostprocessSettings.from_dict(params["postprocess"]) if params.get("postprocess") else None,
         log=sm.log[0])
