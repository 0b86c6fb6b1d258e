"""The post-processing chain of a predicted label map, step by step, with what each step changed.

Order: the optional symmetric components of left/right pairs (``symmetric_pairs``; the hip paper's
symmetric decomposition, :mod:`~mskseg.postprocess.symmetric`: each member's pieces but its largest
go to its partner), then largest connected component per label (stray islands to the label touching
them most; it removes the moved pieces that touch nothing of their new label), then the optional
closing (a ball of ``closing_radius_mm``; the hip paper's smoothing), then hole filling. Filling
comes last so that cavities the closing sealed are filled too. Each step is skipped when
switched off and then reports nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from mskseg.postprocess.changes import Changes, check_labels
from mskseg.postprocess.components import largest_components
from mskseg.postprocess.morphology import close_labels, fill_holes
from mskseg.postprocess.symmetric import check_pairs, symmetric_components


@dataclass(frozen=True)
class PostprocessSettings:
    """Which steps run and how (defaults: the knee paper's largest component + hole filling).

    ``keep_components`` maps a label value to how many of its largest components stay (1 for the
    labels it leaves out): the knee's tibial cartilage needs 2 (its medial and lateral plates).
    ``symmetric_pairs`` holds ``(left, right)`` label values (two different positive values per pair,
    no value in two pairs; lists accepted); empty (the default): the symmetric step does not run.
    """

    largest_component: bool = True
    removed_to: str = "neighbour"
    keep_components: dict[int, int] = field(default_factory=dict)
    fill_holes: bool = True
    closing_radius_mm: float = 0.0
    connectivity: int = 26
    symmetric_pairs: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        # label values as int keys (a JSON or YAML round trip may give strings)
        object.__setattr__(self, "keep_components", {int(k): v for k, v in dict(self.keep_components).items()})
        object.__setattr__(self, "symmetric_pairs", check_pairs(self.symmetric_pairs))
        if self.removed_to not in ("neighbour", "background"):
            raise ValueError(f"removed_to must be 'neighbour' or 'background', got {self.removed_to!r}")
        if self.connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26, got {self.connectivity!r}")
        for value, n in self.keep_components.items():
            if int(n) != n or n < 1:
                raise ValueError(f"keep_components[{value}] must be a positive integer, got {n!r}")
        r = float(self.closing_radius_mm)
        if not np.isfinite(r) or r < 0:
            raise ValueError(f"closing_radius_mm must be a finite distance >= 0, got {self.closing_radius_mm!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PostprocessSettings:
        """Settings from a mapping (a config section); missing keys take defaults, unknown ones raise."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown post-processing settings: {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable form (label values as text keys, sorted) that :meth:`from_dict` reads."""
        out = asdict(self)
        out["keep_components"] = {str(k): v for k, v in sorted(self.keep_components.items())}
        out["symmetric_pairs"] = [list(p) for p in self.symmetric_pairs]
        return out


def postprocess_labels(labels: np.ndarray, label_values: Sequence[int], *, spacing: Sequence[float],
                       settings: PostprocessSettings = PostprocessSettings()) -> tuple[np.ndarray, list[Changes]]:
    """Run the switched-on steps on a label map; returns the new map and one
    :class:`~mskseg.postprocess.changes.Changes` per step run, in order (the input is not modified).

    ``spacing`` (mm per array axis) is used by the closing only. The symmetric step runs first, and
    only when ``settings.symmetric_pairs`` is not empty; every pair value must be in ``label_values``
    (ValueError otherwise).
    """
    out, values = check_labels(labels, label_values)
    report: list[Changes] = []
    if settings.symmetric_pairs:
        missing = sorted({v for p in settings.symmetric_pairs for v in p} - set(values))
        if missing:
            raise ValueError(f"symmetric pair values {missing} are not among the label values {list(values)}")
        out, changes = symmetric_components(out, settings.symmetric_pairs, connectivity=settings.connectivity)
        report.append(changes)
    if settings.largest_component:
        out, changes = largest_components(out, values, connectivity=settings.connectivity,
                                          removed_to=settings.removed_to, keep=settings.keep_components)
        report.append(changes)
    if settings.closing_radius_mm > 0:
        out, changes = close_labels(out, values, radius_mm=settings.closing_radius_mm, spacing=spacing)
        report.append(changes)
    if settings.fill_holes:
        out, changes = fill_holes(out, values, connectivity=settings.connectivity)
        report.append(changes)
    return (out.copy() if out is labels else out), report
