"""PyTorch part of mskseg: the only subpackage that imports torch.

Six modules import no torch, so the workflow can read them while it builds the DAG:
:mod:`mskseg.nn.settings` (a trained method's typed settings), :mod:`mskseg.nn.method` (the method,
parsed from its config entry), :mod:`mskseg.nn.shape_settings` and :mod:`mskseg.nn.shape_method` (the
knee paper's shape fitting, ``kind: shape_fitting``), :mod:`mskseg.nn.spar_settings` (SPAR's settings) and
:mod:`mskseg.nn.weightmap` (the hip paper's distance weight map).
The rest, by job:

* networks and their weights -- :mod:`~mskseg.nn.models`, :mod:`~mskseg.nn.weights`;
* training -- :mod:`~mskseg.nn.losses`, :mod:`~mskseg.nn.data`, :mod:`~mskseg.nn.cache` (the cases'
  arrays on disk, read a slice at a time), :mod:`~mskseg.nn.augment`,
  :mod:`~mskseg.nn.multiplanar` (MPUNet's views), :mod:`~mskseg.nn.engine` (the loop),
  :mod:`~mskseg.nn.checkpoint` (resumable state and epoch files), :mod:`~mskseg.nn.history`,
  :mod:`~mskseg.nn.validation` (whole volumes or sampled slices), :mod:`~mskseg.nn.fit` (one view's
  model), :mod:`~mskseg.nn.transfer` (interactive rounds), :mod:`~mskseg.nn.training` (what the rules run),
  :mod:`~mskseg.nn.round_eval` (the test subjects after every round: the hip paper's Table 1);
* prediction -- :mod:`~mskseg.nn.inference` (slices, sliding windows), :mod:`~mskseg.nn.predict`,
  :mod:`~mskseg.nn.model_info`, :mod:`~mskseg.nn.fusion` (three-plane weights), :mod:`~mskseg.nn.device`;
* the knee paper's method -- :mod:`~mskseg.nn.shape_crop`, :mod:`~mskseg.nn.shape_regression`,
  :mod:`~mskseg.nn.shape_fitting_train` (a fold's trainings), :mod:`~mskseg.nn.shape_fitting` (one volume,
  timed per step), :mod:`~mskseg.nn.on_device` (its steps on tensors that stay on the device);
* new scans and bundles -- :mod:`~mskseg.nn.segment`, :mod:`~mskseg.nn.bundle`, :mod:`~mskseg.nn.export`;
* SPAR -- :mod:`~mskseg.nn.models.spar` (auto-encoder, discriminators), :mod:`~mskseg.nn.spar` (the steps),
  :mod:`~mskseg.nn.spar_regulariser` (the engine's loss and companion, the latent codes),
  :mod:`~mskseg.nn.spar_train` (the auto-encoder's and the regularised segmenter's trainings).

Nothing is imported here, so ``import mskseg.nn`` stays cheap; import the submodules.
"""
