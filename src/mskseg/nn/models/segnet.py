"""SegNet (Badrinarayanan et al., 2017): an encoder-decoder that upsamples with the pooling indices.

Encoder stage ``i`` is ``n_i`` 3x3 conv-BN-ReLU at width ``base * 2**min(i, 3)`` followed by 2x2 max
pooling that keeps the argmax indices; ``n_i`` follows VGG16 (2, 2, 3, 3, 3, then 3). The decoder
mirrors it: max-unpooling with the stored indices (a sparse map, no learned upsampling), then
``n_i`` conv-BN-ReLU, the last of which narrows to the next stage's width; the first stage ends in
a 3x3 convolution to the class logits. ``base=64, depth=5`` is the original SegNet (VGG16 encoder).
"""

from __future__ import annotations

import torch
from torch import nn

from mskseg.nn.models.blocks import ConvBNReLU, check_input, check_positive, he_init

#: convolutions per stage of the VGG16 encoder (further stages use 3)
VGG16_STAGE_CONVS = (2, 2, 3, 3, 3)


def _stage(widths: list[tuple[int, int]], batch_norm: bool) -> nn.Sequential:
    return nn.Sequential(*(ConvBNReLU(a, b, batch_norm=batch_norm) for a, b in widths))


class SegNet(nn.Module):
    """SegNet: ``(B, in_channels, H, W) -> (B, n_classes, H, W)`` logits.

    Parameters
    ----------
    in_channels : int
        Input channels.
    n_classes : int
        Output classes.
    base : int
        Width of the first stage; stage ``i`` has ``base * 2**min(i, 3)`` channels.
    depth : int
        Number of encoder (and decoder) stages, i.e. of poolings. ``H`` and ``W`` must be at least
        ``2**depth``; they need not be divisible by it (unpooling restores each stage's exact size).
    batch_norm : bool
        Batch norm after every convolution but the last.

    Notes
    -----
    Weights are He-initialised (:func:`~mskseg.nn.models.blocks.he_init`).
    """

    def __init__(self, in_channels: int, n_classes: int, *, base: int = 64, depth: int = 5,
                 batch_norm: bool = True) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, n_classes=n_classes, base=base, depth=depth)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.depth = depth
        widths = [base * 2 ** min(i, 3) for i in range(depth)]
        convs = [VGG16_STAGE_CONVS[i] if i < len(VGG16_STAGE_CONVS) else 3 for i in range(depth)]
        self.encoder = nn.ModuleList()
        previous = in_channels
        for w, n in zip(widths, convs, strict=True):
            self.encoder.append(_stage([(previous, w)] + [(w, w)] * (n - 1), batch_norm))
            previous = w
        self.decoder = nn.ModuleList()  # deepest first
        for i in reversed(range(depth)):
            w, n = widths[i], convs[i]
            # the first stage's last convolution is the classifier (self.head)
            pairs = [(w, w)] * (n - 1) + ([(w, widths[i - 1])] if i > 0 else [])
            self.decoder.append(_stage(pairs, batch_norm))
        self.head = nn.Conv2d(widths[0], n_classes, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(kernel_size=2, stride=2)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes, H, W)`` of ``x`` ``(B, in_channels, H, W)``, ``H, W >= 2**depth``."""
        check_input(x, model="SegNet", dims=2, channels=self.in_channels, min_size=2**self.depth)
        indices, sizes = [], []
        for stage in self.encoder:
            x = stage(x)
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            indices.append(idx)
        for stage, idx, size in zip(self.decoder, reversed(indices), reversed(sizes), strict=True):
            x = stage(self.unpool(x, idx, output_size=size))
        return self.head(x)
