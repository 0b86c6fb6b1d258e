"""Rule run_provenance: the configuration, package versions, code commit and machine of the run."""

from pathlib import Path

import _bootstrap

from mskseg.io.atomic import write_text
from mskseg.reporting.provenance import provenance, provenance_html
from mskseg.workflow.logs import setup_logging


def main(*, config: dict, code_folder: Path, page: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "run_provenance")
    record = provenance(config, code_folder)
    write_text(page, provenance_html(record))
    logger.info("code %s, packages %s", record["code"], record["packages"])


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(config=dict(sm.params.config), code_folder=Path(_bootstrap.__file__).resolve().parent.parent,
         page=Path(sm.output.page), log=sm.log[0])
