"""The knee paper's PCA layer: shape-model coefficients and 9 global parameters -> landmark coordinates.

A layer holds a point distribution model (:class:`mskseg.shape.ShapeModel`): the mean shape
``(N, 3)`` in the model frame (mm, centred at the origin by :func:`mskseg.shape.fit_shape_model`),
the first ``K`` modes ``(K, N, 3)`` and their standard deviations ``(K,)`` (mm). Its input is one
vector per sample of ``K + 9`` numbers, in this order::

    b_1 .. b_K    shape coefficients (in standard deviations with ``scaled=True``, the default;
                  in mm, as :meth:`ShapeModel.instance` takes them, with ``scaled=False``)
    t_x t_y t_z   translation, in the output frame's units
    w_x w_y w_z   rotation vector (axis-angle): the axis times the angle in radians
    s_x s_y s_z   log scale factors along the output frame's axes

and its output the points::

    x       = mean + sum_k b_k * sd_k * modes[k]                 (model frame, mm)
    points  = diag(base_scale * exp(s)) @ R(w) @ R0 @ x + t      (output frame)

``R(w) = exp([w]x)`` (Rodrigues; ``w = 0`` is the identity), ``R0`` the fixed rotation from the model
frame's axes to the output frame's (identity by default), ``base_scale`` a fixed per-axis factor.
Rotation and scaling act about the model frame's origin, the mean's centroid. The three scale
factors act along the *output* axes, after the rotation: in a crop resampled to a cube they absorb
the crop's per-axis resampling exactly (a similarity in mm is an axis-scaled similarity in the
cube). With ``base_scale = 1`` the output is in mm; with ``base_scale = 1 / half_extent_mm`` (see
:func:`crop_half_extent_mm`) it is a crop's normalised frame (:mod:`mskseg.nn.shape_crop`).

All zeros give ``R0 @ mean`` scaled by ``base_scale``: with the defaults, the model mean exactly.
The arithmetic runs in the layer's dtype with autocast off (bf16 would cost millimetres).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mskseg.shape.model import ShapeModel

__all__ = ["N_GLOBAL", "PCALayer", "crop_half_extent_mm", "rotation_matrix"]

#: global parameters after the coefficients: translation (3), rotation vector (3), log scale (3)
N_GLOBAL = 9


def rotation_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` of rotation vectors ``(..., 3)`` (axis x angle, radians).

    ``exp`` of the skew-symmetric matrix (Rodrigues' formula), differentiable everywhere, the exact
    identity at zero; the same convention as ``scipy.spatial.transform.Rotation.from_rotvec``.
    """
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*rotvec.shape[:-1], 3, 3)
    return torch.linalg.matrix_exp(skew)


def crop_half_extent_mm(mean: Any, margin_mm: float, rotation: Any | None = None) -> np.ndarray:
    """Half the extent of the ``(N, 3)`` mean shape (mm) along each output axis, plus ``margin_mm``.

    The half extent of a crop around a bone of the mean's size (:func:`~mskseg.nn.shape_crop.crop_geometry`
    with the same margin): ``1 / crop_half_extent_mm(...)`` as ``base_scale`` makes a layer's output the
    crop's normalised frame at the mean's size. ``rotation`` is ``R0`` (model -> output axes).
    """
    points = np.asarray(mean, dtype=float).reshape(-1, 3)
    if rotation is not None:
        points = points @ np.asarray(rotation, dtype=float).reshape(3, 3).T
    return (points.max(axis=0) - points.min(axis=0)) / 2 + float(margin_mm)


def _as_tensor(values: Any, shape: tuple[int, ...], name: str, dtype: torch.dtype) -> torch.Tensor:
    array = np.asarray(values, dtype=np.float64)
    try:
        array = np.broadcast_to(array.reshape(shape) if array.size == int(np.prod(shape)) else array, shape)
    except ValueError:
        raise ValueError(f"{name} must have shape {shape}, got {np.shape(values)}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite")
    return torch.tensor(np.array(array), dtype=dtype)


class PCALayer(nn.Module):
    """Shape-model coefficients and global parameters ``(B, K + 9)`` -> points ``(B, N, 3)`` (module docstring).

    Parameters
    ----------
    mean : array ``(N, 3)``
        Mean shape in the model frame, mm.
    modes : array ``(K, N, 3)`` or ``(K, 3N)``
        Modes of variation (orthonormal when flattened, as in :class:`~mskseg.shape.ShapeModel`).
    sd : array ``(K,)``
        Standard deviation along each mode, mm (used with ``scaled=True``).
    scaled : bool
        Coefficients in standard deviations (True) or in mm (False).
    rotation : array ``(3, 3)``, optional
        ``R0``, a fixed proper rotation from the model frame's axes to the output frame's.
    base_scale : float or array ``(3,)``
        Fixed per-axis factor of the output frame (1: mm; ``1 / half extent``: a crop's normalised frame).
    trainable_shape : bool
        Mean and modes are parameters trained with the network (fine-tuning) instead of buffers;
        the state-dict keys are the same either way.
    dtype : torch.dtype
        Of the mean, modes and the arithmetic.
    """

    def __init__(self, mean: Any, modes: Any, sd: Any, *, scaled: bool = True, rotation: Any | None = None,
                 base_scale: float | Sequence[float] = 1.0, trainable_shape: bool = False,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        mean_t = _as_tensor(mean, np.shape(mean), "mean", dtype)
        if mean_t.dim() != 2 or mean_t.shape[1] != 3 or mean_t.shape[0] < 1:
            raise ValueError(f"mean must have shape (N, 3), got {tuple(mean_t.shape)}")
        n_points = mean_t.shape[0]
        n_modes = int(np.asarray(sd).size)
        modes_t = _as_tensor(modes, (n_modes, n_points, 3), "modes", dtype)
        sd_t = _as_tensor(sd, (n_modes,), "sd", dtype)
        if scaled and bool((sd_t < 0).any()):
            raise ValueError("sd must not be negative")
        rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=float)
        if rot.shape != (3, 3) or not np.allclose(rot.T @ rot, np.eye(3), atol=1e-6) or np.linalg.det(rot) < 0:
            raise ValueError(f"rotation must be a proper (3, 3) rotation, got {rot.tolist()}")
        base = _as_tensor(base_scale, (3,), "base_scale", dtype)
        if bool((base <= 0).any()):
            raise ValueError(f"base_scale must be positive, got {base.tolist()}")
        self.scaled = bool(scaled)
        if trainable_shape:
            self.mean, self.modes = nn.Parameter(mean_t), nn.Parameter(modes_t)
        else:
            self.register_buffer("mean", mean_t)
            self.register_buffer("modes", modes_t)
        self.register_buffer("mode_scale", sd_t if scaled else torch.ones_like(sd_t))
        self.register_buffer("base_rotation", torch.tensor(rot, dtype=dtype))
        self.register_buffer("base_scale", base)

    @classmethod
    def from_shape_model(cls, model: ShapeModel, *, n_modes: int | None = None, scaled: bool = True,
                         rotation: Any | None = None, base_scale: float | Sequence[float] = 1.0,
                         trainable_shape: bool = False, dtype: torch.dtype = torch.float32) -> PCALayer:
        """The layer of a stored shape model's first ``n_modes`` modes (None: all of them).

        ``model.instance(b_mm, transform)`` equals the layer at ``b = b_mm / sd`` (``scaled``), ``t`` =
        the transform's translation, ``w`` its rotation vector and ``s = log(scale)`` on every axis.
        """
        k = model.n_modes if n_modes is None else int(n_modes)
        if isinstance(n_modes, bool) or not 0 <= k <= model.n_modes or (n_modes is not None and k != n_modes):
            raise ValueError(f"n_modes must be a whole number in 0..{model.n_modes} (the model's modes), "
                             f"got {n_modes!r}")
        return cls(model.mean, model.modes[:k], model.sd[:k], scaled=scaled, rotation=rotation,
                   base_scale=base_scale, trainable_shape=trainable_shape, dtype=dtype)

    @property
    def n_modes(self) -> int:
        """``K``, the coefficients per sample."""
        return int(self.modes.shape[0])

    @property
    def n_points(self) -> int:
        """``N``, the points per sample."""
        return int(self.mean.shape[0])

    @property
    def n_params(self) -> int:
        """``K + 9``: the input vector's length."""
        return self.n_modes + N_GLOBAL

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(B, K + 9)`` -> coefficients ``(B, K)``, translation, rotation vector, log scale ``(B, 3)`` each."""
        if params.dim() != 2 or params.shape[1] != self.n_params:
            raise ValueError(f"the PCA layer expects (B, {self.n_params}) parameters ({self.n_modes} modes + "
                             f"{N_GLOBAL} global), got {tuple(params.shape)}")
        k = self.n_modes
        return params[:, :k], params[:, k:k + 3], params[:, k + 3:k + 6], params[:, k + 6:k + 9]

    def shapes(self, coefficients: torch.Tensor) -> torch.Tensor:
        """``mean + sum_k b_k * scale_k * modes[k]``: ``(B, K)`` -> ``(B, N, 3)``, model frame, mm."""
        b = coefficients.to(self.mean.dtype) * self.mode_scale
        return self.mean + torch.einsum("bk,knd->bnd", b, self.modes)

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        """``(B, K + 9)`` -> points ``(B, N, 3)`` in the output frame (see the module docstring)."""
        coefficients, translation, rotvec, log_scale = self.split(params)
        with torch.autocast(device_type=params.device.type, enabled=False):
            dtype = self.mean.dtype
            shape = self.shapes(coefficients)
            rotation = rotation_matrix(rotvec.to(dtype)) @ self.base_rotation
            scale = self.base_scale * torch.exp(log_scale.to(dtype))
            return scale[:, None, :] * (shape @ rotation.transpose(1, 2)) + translation.to(dtype)[:, None, :]
