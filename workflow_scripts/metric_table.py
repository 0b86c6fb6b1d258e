"""Rule metric_table: one metric's table (Markdown, CSV, LaTeX), statistics and box plot for a dataset."""

from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.io.atomic import write_text
from mskseg.io.tables import read_tables, write_table
from mskseg.reporting.build import metric_tables
from mskseg.reporting.html import markdown_page
from mskseg.reporting.plots import box_plot
from mskseg.workflow.logs import setup_logging


def main(*, metrics: list[Path], dataset: str, metric: str, settings: dict, markdown: Path, csv: Path, latex: Path,
         stats: Path, box: Path, page: Path | None = None, log: Path | None = None) -> None:
    logger = setup_logging(log, "metric_table")
    files = metric_tables(read_tables(metrics), [metric], settings, dataset)[metric]
    write_text(markdown, files.markdown)
    if page is not None:
        write_text(page, markdown_page(files.markdown))
    write_table(files.csv, csv)
    write_text(latex, files.latex)
    write_table(files.stats, stats)
    box_plot(files.rows, metric, box.with_suffix(""), methods=list(settings["methods"]), structures=files.structures,
             title=f"{dataset}: {metric}")
    logger.info("%s\n%s", dataset, files.markdown)


if __name__ == "__main__":
    out = snakemake.output  # noqa: F821
    main(metrics=[Path(p) for p in snakemake.input.metrics], dataset=snakemake.wildcards.dataset,  # noqa: F821
         metric=snakemake.wildcards.metric, settings=dict(snakemake.params.settings),  # noqa: F821
         markdown=Path(out.markdown), csv=Path(out.csv), latex=Path(out.latex), stats=Path(out.stats),
         box=Path(out.box), page=Path(out.page), log=snakemake.log[0])  # noqa: F821
