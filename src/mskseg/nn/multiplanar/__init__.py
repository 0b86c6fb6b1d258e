"""Multi-planar view sampling of MPUNet (Perslev et al.), as used by Xu et al. for hip CT:
:mod:`~.geometry` (views, grids, planes), :mod:`~.dataset` (training slices), :mod:`~.predict` (inference).

One 2D network is trained on slices sampled along a fixed set of view orientations (unit
vectors drawn once, stored with the model) on an isotropic grid inside a sphere centred on the
volume. At inference every view is predicted slice by slice over the whole sphere (or, with
``multiplanar.inference_span: train``, on training-size slices centred as in training), each view's
probability stack is interpolated back onto the volume's voxels, the views are summed (averaged
over the views covering a voxel) and the argmax is the label (the hip paper: no fusion model).

"""

from mskseg.nn.multiplanar.dataset import MultiPlanarCase, MultiPlanarDataset
from mskseg.nn.multiplanar.geometry import (
    INFERENCE_SPANS,
    PlaneGrid,
    draw_views,
    inference_grid,
    physical_extents,
    plane_coordinates,
    prediction_grid,
    sample_plane,
    sphere_span,
    training_grid,
    view_basis,
)
from mskseg.nn.multiplanar.predict import predict_multiplanar

__all__ = ["INFERENCE_SPANS", "MultiPlanarCase", "MultiPlanarDataset", "PlaneGrid", "draw_views", "inference_grid",
           "physical_extents", "plane_coordinates", "predict_multiplanar", "prediction_grid", "sample_plane",
           "sphere_span", "training_grid", "view_basis"]
