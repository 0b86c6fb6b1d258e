"""Rule export_bundle: a trained method's models of every fold as one checked archive."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.nn.export import export_method
from mskseg.workflow.logs import setup_logging


def main(*, method: str, settings: dict[str, Any], bundle: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "export_bundle")
    path = export_method(method, settings, bundle)
    logger.info("%s: %d folds -> %s", method, len(settings["folds"]), path)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(method=sm.wildcards.method, settings=dict(sm.params.settings), bundle=Path(sm.output.bundle),
         log=sm.log[0])
