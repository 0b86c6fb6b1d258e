"""Building blocks shared by the networks, for 2D ``(B, C, H, W)`` and 3D ``(B, C, D, H, W)`` tensors.

* :class:`ConvBNReLU` -- convolution, optional batch norm, ReLU (padding keeps the size at stride 1);
* :class:`DoubleConv` -- two of those (the U-Net stage), optional dropout at the end;
* :class:`UpBlock` -- a U-Net decoder stage: upsample x2, concatenate the skip, :class:`DoubleConv`;
* :func:`he_init` -- He initialisation of every convolution and normalisation layer of a module;
* :func:`check_input` -- the shape checks of the models' ``forward``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

UPSAMPLE_MODES = ("transpose", "interp")

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BN = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_INTERP = {2: "bilinear", 3: "trilinear"}

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm,
               nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm)


def check_dims(dims: int) -> int:
    """Return ``dims`` if it is 2 or 3, else raise ValueError."""
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    return dims


def check_positive(**values: int) -> None:
    """Raise ValueError naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_dropout(dropout: float) -> float:
    """Return ``dropout`` if it is a probability in [0, 1), else raise ValueError."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)


def max_pool(dims: int) -> nn.Module:
    """A 2x2 (2x2x2) max pooling with stride 2 for ``dims`` spatial dimensions."""
    return _POOL[check_dims(dims)](kernel_size=2, stride=2)


def conv(dims: int, in_channels: int, out_channels: int, kernel_size: int = 1, *, bias: bool = True) -> nn.Module:
    """A plain ``dims``-D convolution with 'same' padding (odd ``kernel_size``), stride 1."""
    return _CONV[check_dims(dims)](in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class ConvBNReLU(nn.Sequential):
    """Convolution, batch norm (optional) and ReLU: ``(B, in, *S) -> (B, out, *S / stride)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int
        Odd kernel size; the padding ``dilation * (kernel_size - 1) / 2`` keeps the spatial size at
        stride 1 (and halves it, rounding up, at stride 2).
    stride, dilation : int
        Convolution stride and dilation.
    dims : {2, 3}
        Spatial dimensions.
    batch_norm : bool
        Whether to add batch norm after the convolution.
    bias : bool or None
        Convolution bias; ``None`` means "only without batch norm" (a bias before BN is redundant).
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, dims: int = 2, batch_norm: bool = True, bias: bool | None = None) -> None:
        check_positive(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        bias = not batch_norm if bias is None else bias
        layers: list[nn.Module] = [_CONV[check_dims(dims)](
            in_channels, out_channels, kernel_size, stride=stride, padding=dilation * (kernel_size - 1) // 2,
            dilation=dilation, bias=bias)]
        if batch_norm:
            layers.append(_BN[dims](out_channels))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """Two 3x3 (3x3x3) :class:`ConvBNReLU`: ``(B, in, *S) -> (B, out, *S)``, then optional dropout.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out (the middle width is ``out_channels``).
    dims : {2, 3}
        Spatial dimensions.
    batch_norm : bool
        Batch norm after each convolution.
    dropout : float
        Element-wise dropout probability applied to the output (0 adds no layer).
    """

    def __init__(self, in_channels: int, out_channels: int, *, dims: int = 2, batch_norm: bool = True,
                 dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [
            ConvBNReLU(in_channels, out_channels, dims=dims, batch_norm=batch_norm),
            ConvBNReLU(out_channels, out_channels, dims=dims, batch_norm=batch_norm),
        ]
        if check_dropout(dropout) > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class UpBlock(nn.Module):
    """U-Net decoder stage: ``x (B, in, *S)``, ``skip (B, skip, *2S) -> (B, out, *2S)``.

    ``x`` is upsampled x2 to ``out_channels`` channels -- by a 2x2 (2x2x2) transposed convolution
    with stride 2 (``upsample="transpose"``), or by bilinear (trilinear) interpolation followed by a
    3x3 (3x3x3) convolution (``"interp"``) -- concatenated with ``skip`` along the channels and
    passed through a :class:`DoubleConv` to ``out_channels``.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, *, dims: int = 2,
                 batch_norm: bool = True, upsample: str = "transpose") -> None:
        super().__init__()
        check_dims(dims)
        if upsample == "transpose":
            self.up: nn.Module = _CONV_T[dims](in_channels, out_channels, kernel_size=2, stride=2)
        elif upsample == "interp":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode=_INTERP[dims], align_corners=False),
                                    conv(dims, in_channels, out_channels, 3))
        else:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}; got {upsample!r}")
        self.conv = DoubleConv(out_channels + skip_channels, out_channels, dims=dims, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` (B, in, *S), concatenate ``skip`` (B, skip, *2S); return (B, out, *2S)."""
        return self.conv(torch.cat([self.up(x), skip], dim=1))


def he_init(module: nn.Module) -> nn.Module:
    """He-initialise ``module`` in place and return it.

    Every convolution (transposed included) gets Kaiming-normal weights with ``mode="fan_out"``
    for ReLU, i.e. std ``sqrt(2 / fan_out)`` with torch's ``fan_out = weight.shape[0] *
    prod(kernel_size)`` (for a convolution: output channels times kernel volume; for a transposed
    convolution torch's weight layout makes it input channels times kernel volume), and a zero
    bias. Every normalisation layer with affine parameters gets weight 1 and bias 0.
    """
    for m in module.modules():
        if isinstance(m, _CONV_TYPES):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORM_TYPES):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    return module


def check_input(x: torch.Tensor, *, model: str, dims: int, channels: int, multiple: int = 1,
                min_size: int = 1) -> None:
    """Raise ValueError unless ``x`` is ``(B, channels, *S)`` with ``dims`` spatial sizes.

    Each spatial size must also be a multiple of ``multiple`` and at least ``min_size``; the
    message names ``model`` and the offending sizes.
    """
    if x.dim() != dims + 2:
        raise ValueError(f"{model} expects a {dims + 2}-D input (B, C, {_axes(dims)}), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"{model} expects {channels} input channel(s), got {x.shape[1]} (shape {tuple(x.shape)})")
    size = tuple(x.shape[2:])
    if any(s % multiple for s in size):
        raise ValueError(f"{model} needs spatial sizes divisible by {multiple}; got {size}")
    if any(s < min_size for s in size):
        raise ValueError(f"{model} needs spatial sizes of at least {min_size}; got {size}")


def _axes(dims: int) -> str:
    return "H, W" if dims == 2 else "D, H, W"


def as_tuple(values: Sequence[int], n: int, name: str) -> tuple[int, ...]:
    """``values`` as a tuple of ``n`` positive integers, else ValueError naming ``name``."""
    out = tuple(values)
    if len(out) != n:
        raise ValueError(f"{name} must have {n} entries, got {out!r}")
    check_positive(**{f"{name}[{i}]": v for i, v in enumerate(out)})
    return out
