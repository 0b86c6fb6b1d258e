"""Rule cartilage_design_table: the cartilage paper's experiments, Dice along the field of view, training-set size."""

from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from mskseg.io.atomic import write_text
from mskseg.io.tables import read_table, write_table
from mskseg.reporting.design_table import design_markdown, experiment_scores, fov_figure, size_figure, size_scores
from mskseg.reporting.html import markdown_page
from mskseg.workflow.logs import setup_logging


def main(*, study: dict, metrics: list[Path], fovs: list[Path], table: Path, page: Path, csv: Path, sizes: Path,
         fov: Path, powerlaw: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "cartilage_design_table")
    scores = pd.concat([read_table(p) for p in metrics], ignore_index=True)
    structure, names, alpha = study["structure"], list(study["metrics"]), float(study["alpha"])
    experiments = [(name, [tuple(r) for r in rows]) for name, rows in study["experiments"]]
    runs = [(arch, [tuple(r) for r in members]) for arch, members in study["sizes"]]
    rows, tests = experiment_scores(scores, experiments, structure=structure, metric_names=names, alpha=alpha)
    size_table, points, fits = (size_scores(scores, runs, study["patients"], structure=structure, metric_names=names)
                                if runs else (pd.DataFrame(), {}, {}))
    n_scans = int(scores.loc[scores["structure"] == structure].groupby("method")["subject"].nunique().max())
    text = design_markdown(rows, tests, size_table, dataset=study["dataset"], structure=structure,
                           metric_names=names, alpha=alpha, n_scans=n_scans, decimals=int(study["decimals"]))
    title = f"{study['dataset']}: {structure}"
    if experiments:
        fov_figure(pd.concat([read_table(p) for p in fovs], ignore_index=True), experiments, fov.with_suffix(""),
                   structure=structure, bins=int(study["bins"]), title=f"{title}, Dice along the field of view")
    else:
        write_text(fov, "")  # no experiments: an empty figure file keeps the rule's outputs fixed
    if runs:
        size_figure(points, fits, powerlaw.with_suffix(""), title=f"{title}, training-set size")
    else:
        write_text(powerlaw, "")
    write_table(rows.merge(tests, on=["experiment", "metric"], how="left"), csv)
    write_table(size_table, sizes)
    write_text(table, text)
    write_text(page, markdown_page(text))
    logger.info("%s", text)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(study=dict(sm.params.study), metrics=[Path(p) for p in sm.input.metrics],
         fovs=[Path(p) for p in sm.input.fovs], table=Path(sm.output.table), page=Path(sm.output.page),
         csv=Path(sm.output.csv), sizes=Path(sm.output.sizes), fov=Path(sm.output.fov),
         powerlaw=Path(sm.output.powerlaw), log=sm.log[0])
