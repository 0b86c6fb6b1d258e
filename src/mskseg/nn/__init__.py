"""PyTorch part of mskseg: the only subpackage that imports torch.

* :mod:`mskseg.nn.models` -- the segmentation networks of the papers (U-Net 2D/2.5D/3D, SegNet,
  DeepLabV3+, U-Net with a VGG16 encoder), a name registry and :func:`~mskseg.nn.models.build_model`;
* :mod:`mskseg.nn.weights` -- saving and loading model weights (local files only);
* :mod:`mskseg.nn.losses` -- the segmentation losses.

Nothing is imported here, so ``import mskseg.nn`` stays cheap; import the submodules.
"""
