"""Rule hip_transfer_table: the hip paper's Table 1 from the round scores and the evaluation stage's metrics."""

from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from mskseg.io.atomic import write_text
from mskseg.io.tables import write_table
from mskseg.reporting.html import markdown_page
from mskseg.reporting.transfer_table import (
    QUOTED_PAPER,
    earlier_frame,
    final_frame,
    transfer_markdown,
    transfer_table,
    unseen_frame,
)
from mskseg.workflow.logs import setup_logging


def main(*, study: dict, earlier: list[Path], rounds: list[Path], final: list[Path], table: Path, csv: Path,
         page: Path | None = None, log: Path | None = None) -> None:
    logger = setup_logging(log, "hip_transfer_table")
    cells = [tuple(c) for c in study["cells"]]
    unseen = unseen_frame([(label, fold, path) for (label, fold), path in zip(cells, rounds, strict=True)])
    before = earlier_frame([(label, fold, path) for (label, fold), path in zip(cells, earlier, strict=True)])
    last = final_frame([(*key, path) for key, path in zip(study["final"], final, strict=True)], unseen)
    scores = pd.concat([before, last], ignore_index=True)
    result = transfer_table(scores, unseen, metrics=study["metrics"], order=study["labels"],
                            reference=study["reference"])
    write_table(result, csv)
    rows = ", ".join(f"{label} = {method}" for label, method in zip(study["labels"], study["methods"], strict=True))
    title = (f"{study['dataset']}: the hip paper's Table 1 (hip_transfer) on the test subjects of "
             f"{len({f for _, f in cells})} fold(s)")
    notes = {"Methods": rows, "Expert correction": "between rounds the scans a round adds come with their accurate "
             "labels (the reference masks), standing in for the expert's corrections of the model's predictions.",
             "Paper (quoted)": QUOTED_PAPER}
    text = transfer_markdown(result, metrics=study["metrics"], title=title, reference=study["reference"], notes=notes)
    write_text(table, text)
    if page is not None:
        write_text(page, markdown_page(text))
    logger.info("%d rows -> %s", len(result), table)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(study=dict(sm.params.study), earlier=list(sm.input.earlier), rounds=list(sm.input.rounds),
         final=list(sm.input.final), table=Path(sm.output.table), csv=Path(sm.output.csv),
         page=Path(sm.output.page), log=sm.log[0])
