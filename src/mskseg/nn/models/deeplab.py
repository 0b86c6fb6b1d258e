"""DeepLabV3+ (Chen et al., 2018) on a small ResNet-style encoder.

* Encoder: a stem (3x3 conv stride 2, 3x3 conv, 3x3 max pooling stride 2; output stride 4), then
  four stages of basic residual blocks at widths ``base * (1, 2, 4, 8)``. Stages 2 and 3 halve
  the resolution; the rest keep it by dilating instead, for an output stride of 16 (stage 4
  dilated 2) or 8 (stage 3 dilated 2, stage 4 dilated 4).
* :class:`ASPP`: a 1x1 convolution, three 3x3 atrous convolutions (rates (6, 12, 18) at output
  stride 16, doubled at 8) and image pooling, concatenated, projected by a 1x1 convolution, dropout.
* Decoder: the ASPP output upsampled (bilinear) to the stage-1 features (output stride 4), which are
  reduced by a 1x1 convolution, concatenated, refined by two 3x3 convolutions, classified by a 1x1
  convolution and upsampled (bilinear) to the input size.

Any input size works (a size that is a multiple of the output stride keeps the feature grids
aligned). The image-pooling branch has no batch norm (a 1x1 map of a single image has one value
per channel), so training with batch size 1 works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mskseg.nn.models.blocks import ConvBNReLU, as_tuple, check_dropout, check_input, check_positive, he_init

#: ASPP atrous rates at output stride 16 (doubled at output stride 8)
ASPP_RATES_OS16 = (6, 12, 18)
OUTPUT_STRIDES = (8, 16)


class BasicBlock(nn.Module):
    """Residual block of two 3x3 conv-BN: ``(B, in, H, W) -> (B, out, H / stride, W / stride)``.

    The shortcut is the identity, or a 1x1 conv-BN when the stride or the width changes.
    """

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, H, W) -> (B, out, H', W')``."""
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """ResNet-style encoder: ``(B, C, H, W)`` -> (low-level ``(B, base, H/4, W/4)``, high-level
    ``(B, 8 * base, H/os, W/os)``) for output stride ``os`` in (8, 16) (sizes rounded up)."""

    def __init__(self, in_channels: int, *, base: int = 64, blocks: Sequence[int] = (2, 2, 2, 2),
                 output_stride: int = 16) -> None:
        super().__init__()
        blocks = as_tuple(blocks, 4, "blocks")
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
        strides, dilations = ((1, 2, 2, 1), (1, 1, 1, 2)) if output_stride == 16 else ((1, 2, 1, 1), (1, 1, 2, 4))
        self.stem = nn.Sequential(ConvBNReLU(in_channels, base, stride=2), ConvBNReLU(base, base),
                                  nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.stages = nn.ModuleList()
        previous = base
        for i, (n, stride, dilation) in enumerate(zip(blocks, strides, dilations, strict=True)):
            width = base * 2**i
            layers = [BasicBlock(previous, width, stride=stride, dilation=dilation)]
            layers += [BasicBlock(width, width, dilation=dilation) for _ in range(n - 1)]
            self.stages.append(nn.Sequential(*layers))
            previous = width
        self.low_channels = base
        self.out_channels = previous

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the stage-1 (output stride 4) and the last stage's feature maps."""
        x = self.stem(x)
        low = x = self.stages[0](x)
        for stage in self.stages[1:]:
            x = stage(x)
        return low, x


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``(B, in, h, w) -> (B, out, h, w)``.

    Branches: 1x1 conv-BN-ReLU; three 3x3 atrous conv-BN-ReLU at ``rates``; global average pooling,
    1x1 conv (with bias, no norm) and ReLU, broadcast back to ``h x w``. The five are concatenated
    and projected by a 1x1 conv-BN-ReLU, followed by dropout.
    """

    def __init__(self, in_channels: int, out_channels: int, *, rates: Sequence[int] = ASPP_RATES_OS16,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.rates = as_tuple(rates, 3, "rates")
        self.branches = nn.ModuleList([ConvBNReLU(in_channels, out_channels, kernel_size=1)] + [
            ConvBNReLU(in_channels, out_channels, dilation=r) for r in self.rates])
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1),
                                        nn.ReLU(inplace=True))
        self.project = nn.Sequential(ConvBNReLU(5 * out_channels, out_channels, kernel_size=1),
                                     nn.Dropout(check_dropout(dropout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in, h, w) -> (B, out, h, w)``."""
        h, w = x.shape[-2:]
        pooled = self.image_pool(x).expand(-1, -1, h, w)
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+: ``(B, in_channels, H, W) -> (B, n_classes, H, W)`` logits.

    Parameters
    ----------
    in_channels : int
        Input channels.
    n_classes : int
        Output classes.
    base : int
        Width of the first encoder stage; the stages have ``base * (1, 2, 4, 8)`` channels.
    blocks : sequence of 4 int
        Residual blocks per encoder stage ((2, 2, 2, 2) is ResNet-18-like).
    output_stride : {16, 8}
        Ratio of the input size to the encoder output size.
    aspp_channels : int or None
        Width of ASPP and of the decoder; ``None`` means ``4 * base`` (256 at base 64, as in the paper).
    low_level_channels : int or None
        Width the low-level features are reduced to; ``None`` means ``3 * base // 4`` (48 at base 64).
    atrous_rates : sequence of 3 int or None
        ASPP rates; ``None`` means (6, 12, 18) at output stride 16 and (12, 24, 36) at 8.
    dropout : float
        Dropout after the ASPP projection.

    Notes
    -----
    Weights are He-initialised (:func:`~mskseg.nn.models.blocks.he_init`).
    """

    def __init__(self, in_channels: int, n_classes: int, *, base: int = 64, blocks: Sequence[int] = (2, 2, 2, 2),
                 output_stride: int = 16, aspp_channels: int | None = None, low_level_channels: int | None = None,
                 atrous_rates: Sequence[int] | None = None, dropout: float = 0.5) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, n_classes=n_classes, base=base)
        aspp_channels = 4 * base if aspp_channels is None else aspp_channels
        low_level_channels = max(1, 3 * base // 4) if low_level_channels is None else low_level_channels
        check_positive(aspp_channels=aspp_channels, low_level_channels=low_level_channels)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.output_stride = output_stride
        self.encoder = ResNetEncoder(in_channels, base=base, blocks=blocks, output_stride=output_stride)
        if atrous_rates is None:
            atrous_rates = tuple(r * 16 // output_stride for r in ASPP_RATES_OS16)
        self.aspp = ASPP(self.encoder.out_channels, aspp_channels, rates=atrous_rates, dropout=dropout)
        self.reduce = ConvBNReLU(self.encoder.low_channels, low_level_channels, kernel_size=1)
        self.refine = nn.Sequential(ConvBNReLU(aspp_channels + low_level_channels, aspp_channels),
                                    ConvBNReLU(aspp_channels, aspp_channels))
        self.head = nn.Conv2d(aspp_channels, n_classes, 1)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes, H, W)`` of ``x`` ``(B, in_channels, H, W)``."""
        check_input(x, model="DeepLabV3Plus", dims=2, channels=self.in_channels)
        low, high = self.encoder(x)
        y = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.head(self.refine(torch.cat([y, self.reduce(low)], dim=1)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
