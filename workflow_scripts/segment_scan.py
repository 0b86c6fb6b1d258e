"""Rule segment_scan: one new scan segmented on its own grid by every fold of a trained method."""

from pathlib import Path
from typing import Any

import _bootstrap  # noqa: F401

from mskseg.workflow.logs import setup_logging


def main(*, subject: str, image: Path, settings: dict[str, Any], roles: dict[str, dict[str, str]],
         outputs: dict[str, Path], bundle: Path | None = None, reference: Path | None = None, threads: int = 1,
         dataset: str = "", log: Path | None = None) -> None:
    logger = setup_logging(log, "segment_scan")
    from mskseg.nn.device import set_threads  # imported here: torch is slow to import
    from mskseg.nn.segment import segment_dataset_scan

    set_threads(threads)
    segment_dataset_scan(subject, image, settings, roles=roles, bundle=bundle, reference=reference, outputs=outputs,
                         where=f"datasets.{dataset}.segment.model.bundle", logger=logger)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    from mskseg.workflow.paths import optional_input

    main(subject=sm.wildcards.subject, image=Path(sm.input.image), settings=dict(sm.params.settings),
         roles={k: dict(v) for k, v in dict(sm.params.roles).items()},
         outputs={k: Path(v) for k, v in sm.output.items()}, bundle=optional_input(sm.input, "bundle"),
         reference=Path(sm.params.reference) if sm.params.reference else None, threads=sm.threads,
         dataset=sm.wildcards.dataset, log=sm.log[0])
