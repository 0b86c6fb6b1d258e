"""Rule correspondence_table: every subject's correspondence quality for one shape model in one table."""

import json
from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from mskseg.io.tables import write_table
from mskseg.logs import setup_logging


def main(*, records: list[Path], table: Path, log: Path | None = None) -> None:
    logger = setup_logging(log, "correspondence_table")
    frame = pd.DataFrame([json.loads(Path(p).read_text(encoding="utf-8")) for p in records])
    write_table(frame, table)
    for _, row in frame[~frame["converged"].astype(bool)].iterrows():
        logger.warning("EXCLUDED %s %s: registration did not converge (%s)", row["subject"], row["structure"],
                       row["reason"])
    ok = frame[frame["converged"].astype(bool)]
    cols = [c for c in ("dice", "surface_mean_mm", "surface_p95_mm", "surface_max_mm", "surface_mean_voxels",
                        "truth_mean_mm", "truth_p95_mm", "truth_max_mm") if c in ok]
    logger.info("%d of %d registrations converged; mean over them:\n%s", len(ok), len(frame),
                ok[cols].mean().to_string())


if __name__ == "__main__":
    main(records=[Path(p) for p in snakemake.input.records], table=Path(snakemake.output.table),  # noqa: F821
         log=snakemake.log[0])  # noqa: F821
