"""Post-processing of predictions (numpy/scipy): ensembling and the clean-up of label maps.

* :mod:`~mskseg.postprocess.ensemble` -- class probabilities of several networks added, arg max
  (knee paper 3.5);
* :mod:`~mskseg.postprocess.symmetric` -- the hip paper's symmetric decomposition: each member of a left/right
  pair keeps its largest component, its other components go to the other member;
* :mod:`~mskseg.postprocess.components` -- the largest connected component per label, the islands
  handed to the label touching them most;
* :mod:`~mskseg.postprocess.morphology` -- hole filling and closing with a ball in mm;
* :mod:`~mskseg.postprocess.changes` -- what each step changed, per label, for the logs;
* :mod:`~mskseg.postprocess.pipeline` -- the steps chained by settings.

Label maps hold label values (0 background) and every step takes the list of values it may touch.
"""

from mskseg.postprocess.changes import Changes
from mskseg.postprocess.components import (
    Islands,
    find_islands,
    group_islands,
    island_voxels,
    kept_components,
    largest_components,
    reassign,
)
from mskseg.postprocess.ensemble import argmax_labels, ensemble_labels, summed_scores
from mskseg.postprocess.morphology import ball, close_labels, fill_holes
from mskseg.postprocess.pipeline import PostprocessSettings, postprocess_labels
from mskseg.postprocess.symmetric import symmetric_components

__all__ = [
    "Changes",
    "Islands",
    "PostprocessSettings",
    "argmax_labels",
    "ball",
    "close_labels",
    "ensemble_labels",
    "fill_holes",
    "find_islands",
    "group_islands",
    "island_voxels",
    "kept_components",
    "largest_components",
    "postprocess_labels",
    "reassign",
    "summed_scores",
    "symmetric_components",
]
