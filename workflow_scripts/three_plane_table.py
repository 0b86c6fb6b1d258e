"""Rule three_plane_table: each plane alone and fused, the blending weights and the confusion matrices."""

from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from mskseg.io.atomic import write_text
from mskseg.io.tables import read_table, write_table
from mskseg.reporting.html import markdown_page
from mskseg.reporting.plane_table import confusion_figure, plane_markdown
from mskseg.workflow.logs import setup_logging


def main(*, study: dict, scores: list[Path], confusions: list[Path], fusions: list[Path], table: Path, csv: Path,
         page: Path, figure: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "three_plane_table")
    from mskseg.nn.fusion import read_fusion_weights  # reads JSON (mskseg.nn: the fusion file's owner)

    folds = [str(f) for f in study["folds"]]
    score = pd.concat([read_table(p).assign(fold=f) for f, p in zip(folds, scores, strict=True)], ignore_index=True)
    confusion = pd.concat([read_table(p).assign(fold=f) for f, p in zip(folds, confusions, strict=True)],
                          ignore_index=True)
    weights = {f: read_fusion_weights(p) for f, p in zip(folds, fusions, strict=True)}
    text, frame = plane_markdown(score, confusion, weights, dataset=study["dataset"], method=study["method"],
                                 table_settings=study["tables"])
    write_table(frame, csv)
    write_text(table, text)
    write_text(page, markdown_page(text))
    confusion_figure(confusion, figure, title=f"{study['dataset']}, {study['method']}: confusion per plane (%)")
    logger.info("%s", text)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(study=dict(sm.params.study), scores=[Path(p) for p in sm.input.scores],
         confusions=[Path(p) for p in sm.input.confusions], fusions=[Path(p) for p in sm.input.fusions],
         table=Path(sm.output.table), csv=Path(sm.output.csv), page=Path(sm.output.page),
         figure=Path(sm.output.figure), log=sm.log[0])
