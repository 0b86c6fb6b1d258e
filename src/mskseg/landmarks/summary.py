"""One shape model's correspondence table: the reference marked, who is left out of the models, the means.

The reference instance is registered to itself: Dice 1, its landmarks on its own surface and 0 mm from
its own true points. It is listed (``reference`` true) but counted in no mean, which it would flatter.
Nor are the instances the models leave out: registrations that did not converge and bones the field of
view cuts shorter than the trim (``trim_short``, :mod:`mskseg.registration.trim`). The means describe
the correspondences the shape models are built from.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mskseg.registration.reference import Instance
from mskseg.registration.trim import short_message

#: the columns averaged, where the table has them
MEAN_COLUMNS = ("dice", "surface_mean_mm", "surface_p95_mm", "surface_max_mm", "surface_mean_voxels",
                "truth_mean_mm", "truth_p95_mm", "truth_max_mm")


def truthy(column: pd.Series) -> pd.Series:
    """A True/False column as booleans, read as booleans or as text (an empty cell is False)."""
    return column.astype(str).str.strip().str.lower().isin(("true", "1"))


@dataclass(frozen=True)
class CorrespondenceSummary:
    """``table``: every row, with a ``reference`` column; ``excluded``: ``(subject, structure, why)`` of
    each instance the models leave out; ``means`` over ``counted`` rows (neither reference nor excluded)."""

    table: pd.DataFrame
    excluded: list[tuple[str, str, str]]
    counted: int
    means: pd.Series


def summarise_correspondence(frame: pd.DataFrame, reference: Instance | None) -> CorrespondenceSummary:
    """Mark the reference's row and average the others that enter the models (see the module)."""
    table = frame.reset_index(drop=True).copy()
    is_ref = pd.Series(False, index=table.index)
    if reference is not None:
        is_ref = (table["subject"].astype(str) == reference.subject) & (
            table["structure"].astype(str) == reference.structure)
    table["reference"] = is_ref
    converged = truthy(table["converged"])
    short = truthy(table["trim_short"]) if "trim_short" in table else pd.Series(False, index=table.index)
    excluded = []
    for i, row in table.iterrows():
        if not converged[i]:
            excluded.append((str(row["subject"]), str(row["structure"]),
                             f"registration did not converge ({row.get('reason', '')})"))
        elif short[i]:
            excluded.append((str(row["subject"]), str(row["structure"]), short_message(row)))
    counted = converged & ~short & ~is_ref
    cols = [c for c in MEAN_COLUMNS if c in table]
    means = table.loc[counted, cols].apply(pd.to_numeric, errors="coerce").mean()
    return CorrespondenceSummary(table=table, excluded=excluded, counted=int(counted.sum()), means=means)


__all__ = ["MEAN_COLUMNS", "CorrespondenceSummary", "summarise_correspondence", "truthy"]
