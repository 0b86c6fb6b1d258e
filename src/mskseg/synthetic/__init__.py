"""Deterministic synthetic phantoms (knee MRI, hip CT, ankle MRI) with known ground truth.

``generate_subject(kind, index, ...)`` returns a :class:`SyntheticSubject`: an image, its
label map (``LABELS[kind]``), optionally a degraded label map, corresponding surface
landmarks of the structures in ``LANDMARK_STRUCTURES[kind]`` and the JSON-serialisable
parameters. Geometry follows :mod:`mskseg.volume` (ITK index order, mm, LPS world).
"""

from mskseg.synthetic.generate import (
    KINDS,
    LABELS,
    LANDMARK_STRUCTURES,
    SyntheticSubject,
    generate_subject,
)

__all__ = ["KINDS", "LABELS", "LANDMARK_STRUCTURES", "SyntheticSubject", "generate_subject"]
