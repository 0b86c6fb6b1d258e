"""Rule evaluate_rounds: a fold's test subjects scored with each interactive round's weights before the last."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.tables import read_table, write_table
from mskseg.metrics.evaluate import EvaluationSettings
from mskseg.nn.settings import InferenceSettings
from mskseg.postprocess import PostprocessSettings
from mskseg.workflow.logs import setup_logging


def main(*, model: Path, info: Path, round_weights: Path, rounds: Path, subjects: list[str], images: list[Path],
         masks: list[Path], inference: InferenceSettings, labels: dict[str, int], evaluation: EvaluationSettings,
         table: Path, threads: int = 1, postprocess: PostprocessSettings | None = None,
         log: Path | None = None) -> None:
    logger = setup_logging(log, "evaluate_rounds")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.round_eval import evaluate_rounds

    set_threads(threads)
    scores = evaluate_rounds(read_table(rounds), round_weights, model, info, subjects, images, masks,
                             inference=inference, labels=labels, evaluation=evaluation, postprocess=postprocess,
                             logger=logger)
    write_table(scores, table)
    logger.info("%d rounds before the last x %d test subjects scored -> %s",
                scores["round"].nunique() if len(scores) else 0, len(subjects), table)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    params = dict(sm.params.inference)
    settings = dict(sm.params.evaluation)
    settings.pop("fov_axis", None)  # no per-slice curves for the round scores
    main(model=Path(sm.input.model), info=Path(sm.input.info), round_weights=Path(sm.input.round_weights),
         rounds=Path(sm.input.rounds), subjects=list(sm.params.subjects), images=[Path(p) for p in sm.input.images],
         masks=[Path(p) for p in sm.input.masks], inference=InferenceSettings.from_dict(params["inference"]),
         labels=dict(params["labels"]), evaluation=EvaluationSettings(**settings), table=Path(sm.output.table),
         threads=params["threads"],
         postprocess=PostprocessSettings.from_dict(params["postprocess"]) if params.get("postprocess") else None,
         log=sm.log[0])
