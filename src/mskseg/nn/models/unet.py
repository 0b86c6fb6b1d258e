"""U-Net (Ronneberger et al., 2015) with batch norm, in 2D and 3D, and the 2.5D U-Net of Desai et al.

* :class:`UNet` -- the classic encoder-decoder: ``depth`` times (2x2 max pooling, two 3x3 conv-BN-ReLU,
  doubling the width), then ``depth`` decoder stages (x2 upsampling to half the width, concatenation
  of the encoder feature map of the same size, two 3x3 conv-BN-ReLU) and a 1x1 convolution to the
  class logits. All convolutions are padded, so the output has the input's spatial size; that needs
  every input size divisible by ``2**depth`` (checked). ``dims=3`` gives the 3D U-Net (Cicek et al.).
* :class:`UNet25D` -- a 2D U-Net whose input channels are ``n_slices`` neighbouring slices (odd
  ``n_slices``, e.g. 3, 5 or 7) and whose output is the segmentation of the centre slice.
"""

from __future__ import annotations

import torch
from torch import nn

from mskseg.nn.models.blocks import (
    DoubleConv,
    UpBlock,
    check_dims,
    check_dropout,
    check_input,
    check_positive,
    conv,
    he_init,
    max_pool,
)


class UNet(nn.Module):
    """U-Net: ``(B, in_channels, *S) -> (B, n_classes, *S)`` logits, ``S`` = (H, W) or (D, H, W).

    Parameters
    ----------
    in_channels : int
        Input channels.
    n_classes : int
        Output channels (class logits, no softmax).
    base : int
        Width of the first stage; stage ``i`` has ``base * 2**i`` channels (``base=64, depth=4``
        is the original U-Net: 64 ... 1024).
    depth : int
        Number of poolings (and of decoder stages). Spatial input sizes must be divisible by
        ``2**depth``; other sizes raise ValueError naming the size.
    dims : {2, 3}
        2D or 3D convolutions.
    batch_norm : bool
        Batch norm after every 3x3 convolution.
    dropout : float
        Dropout probability at the end of the contracting path (after the bottleneck), as in the
        original U-Net; 0 disables it.
    upsample : {"transpose", "interp"}
        Decoder upsampling: 2x2 transposed convolution with stride 2, or bilinear/trilinear
        interpolation followed by a 3x3 convolution.

    Notes
    -----
    Weights are He-initialised (:func:`~mskseg.nn.models.blocks.he_init`).
    """

    def __init__(self, in_channels: int, n_classes: int, *, base: int = 64, depth: int = 4, dims: int = 2,
                 batch_norm: bool = True, dropout: float = 0.0, upsample: str = "transpose") -> None:
        super().__init__()
        check_positive(in_channels=in_channels, n_classes=n_classes, base=base, depth=depth)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.depth = depth
        self.dims = check_dims(dims)
        check_dropout(dropout)
        widths = [base * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0], dims=dims, batch_norm=batch_norm)
        self.pool = max_pool(dims)
        self.down = nn.ModuleList(
            DoubleConv(widths[i], widths[i + 1], dims=dims, batch_norm=batch_norm,
                       dropout=dropout if i == depth - 1 else 0.0)
            for i in range(depth))
        self.up = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i], dims=dims, batch_norm=batch_norm, upsample=upsample)
            for i in reversed(range(depth)))
        self.head = conv(dims, widths[0], n_classes, 1)
        he_init(self)

    @property
    def size_multiple(self) -> int:
        """Spatial input sizes must be multiples of this (``2**depth``)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes, *S)`` of ``x`` ``(B, in_channels, *S)``; ``S`` divisible by ``2**depth``."""
        check_input(x, model=type(self).__name__, dims=self.dims, channels=self.in_channels,
                    multiple=self.size_multiple)
        x = self.inc(x)
        skips = []
        for down in self.down:
            skips.append(x)
            x = down(self.pool(x))
        for up, skip in zip(self.up, reversed(skips), strict=True):
            x = up(x, skip)
        return self.head(x)


class UNet25D(UNet):
    """2.5D U-Net: ``n_slices`` neighbouring 2D slices in, the centre slice's logits out.

    The input is either ``(B, n_slices * channels_per_slice, H, W)`` with the channels of slice
    ``k`` (0 = first) at ``k * channels_per_slice ... (k + 1) * channels_per_slice - 1``, or a slab
    in the 3D layout ``(B, channels_per_slice, n_slices, H, W)`` (slices along the depth axis),
    which is rearranged to the former. The output is ``(B, n_classes, H, W)`` for slice
    ``n_slices // 2`` (:attr:`centre`).

    Parameters
    ----------
    n_slices : int
        Odd number of slices, >= 1 (Desai et al. use 3, 5 and 7; 1 is a plain 2D U-Net).
    n_classes : int
        Output classes.
    channels_per_slice : int
        Channels of one slice (1 for MRI).
    base, depth, batch_norm, dropout, upsample
        As for :class:`UNet` (always 2D).
    """

    def __init__(self, n_slices: int, n_classes: int, *, channels_per_slice: int = 1, base: int = 64,
                 depth: int = 4, batch_norm: bool = True, dropout: float = 0.0,
                 upsample: str = "transpose") -> None:
        check_positive(n_slices=n_slices, channels_per_slice=channels_per_slice)
        if n_slices % 2 == 0:
            raise ValueError(f"n_slices must be odd (a centre slice and as many neighbours on each side), "
                             f"got {n_slices}")
        super().__init__(n_slices * channels_per_slice, n_classes, base=base, depth=depth, dims=2,
                         batch_norm=batch_norm, dropout=dropout, upsample=upsample)
        self.n_slices = n_slices
        self.channels_per_slice = channels_per_slice

    @property
    def centre(self) -> int:
        """Index of the slice that is segmented (``n_slices // 2``)."""
        return self.n_slices // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Centre-slice logits ``(B, n_classes, H, W)`` of ``(B, N*C, H, W)`` or ``(B, C, N, H, W)``."""
        if x.dim() == 5:
            b, c, n, h, w = x.shape
            if (c, n) != (self.channels_per_slice, self.n_slices):
                raise ValueError(f"UNet25D expects a slab (B, {self.channels_per_slice}, {self.n_slices}, H, W), "
                                 f"got shape {tuple(x.shape)}")
            x = x.transpose(1, 2).reshape(b, n * c, h, w)
        return super().forward(x)
