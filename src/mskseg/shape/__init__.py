"""Statistical shape models from corresponding 3D landmarks (mm): Procrustes, then PCA.

* :mod:`~mskseg.shape.procrustes`: similarity transforms, :func:`fit_similarity`,
  :func:`generalized_procrustes`;
* :mod:`~mskseg.shape.model`: :class:`ShapeModel` (instance, project, reconstruct);
* :mod:`~mskseg.shape.pca`: :func:`fit_shape_model`;
* :mod:`~mskseg.shape.storage`: the ``.npz`` + ``.json`` file format;
* :mod:`~mskseg.shape.quality`: compactness, generalisation, specificity;
* :mod:`~mskseg.shape.plots`: quality curves and mode figures.
"""

from __future__ import annotations

from mskseg.shape.model import ShapeModel
from mskseg.shape.pca import fit_shape_model
from mskseg.shape.plots import plot_modes, plot_quality
from mskseg.shape.procrustes import GPAResult, SimilarityTransform, fit_similarity, generalized_procrustes
from mskseg.shape.quality import compactness, generalisation, quality_table, specificity
from mskseg.shape.storage import ShapeModelFormatError, load_shape_model, save_shape_model

__all__ = [
    "GPAResult",
    "ShapeModel",
    "ShapeModelFormatError",
    "SimilarityTransform",
    "compactness",
    "fit_shape_model",
    "fit_similarity",
    "generalisation",
    "generalized_procrustes",
    "load_shape_model",
    "plot_modes",
    "plot_quality",
    "quality_table",
    "save_shape_model",
    "specificity",
]
