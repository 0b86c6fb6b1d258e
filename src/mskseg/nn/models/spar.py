"""The networks of SPAR (shape-prior adversarial regularisation): a shape auto-encoder and discriminators.

* :class:`ShapeAutoEncoder` -- learns a compact, non-linear representation of label maps (paper 2.2):
  an encoder ``F`` of one-hot (or softmax) maps ``(B, K, *S)`` to a latent shape-code volume
  ``(B, C, *S / 2**depth)`` (conv, batch norm, ReLU and max-pooling, as the paper says) and a decoder
  ``G`` back to class logits ``(B, K, *S)`` (transposed convolutions; the paper does not describe it).
* :class:`LatentDiscriminator` -- the paper's shape-code discriminator (2.3): per layer a 1x1
  convolution halving the features, batch norm, 2x max-pooling halving the spatial size, ReLU; then
  a 1x1 convolution to one logit per position, the global mean and a sigmoid: the probability that
  a code comes from a real (reference) mask.
* :class:`MaskDiscriminator` -- the same kind of network on the label maps themselves, for the
  "adversarial regularisation on masks" baseline: a 3x3 stem lifts the ``K`` class channels to
  ``width`` features, then the halving layers use 3x3 kernels (a 1x1 kernel on a mask would see
  one pixel's class and nothing of the shape).

The training pieces (losses, steps, settings) are in :mod:`mskseg.nn.spar`.
"""

from __future__ import annotations

import torch
from torch import nn

from mskseg.nn.models.blocks import (
    _BN,
    _CONV,
    _CONV_T,
    ConvBNReLU,
    check_dims,
    check_input,
    check_positive,
    conv,
    he_init,
    max_pool,
)

__all__ = ["HalvingDiscriminator", "LatentDiscriminator", "MaskDiscriminator", "ShapeAutoEncoder"]


class ShapeAutoEncoder(nn.Module):
    """Convolutional auto-encoder of label maps: ``(B, K, *S) -> codes (B, C, *S / 2**depth) -> logits (B, K, *S)``.

    Encoder ``F``: a 3x3 (3x3x3) conv-BN-ReLU to ``base`` channels at full size, then ``depth`` times
    2x max-pooling and a 3x3 conv-BN-ReLU doubling the width (``base * 2**i`` channels at stage
    ``i``; the last stage has ``latent_channels``). Decoder ``G``: ``depth`` times a 2x2 (2x2x2)
    transposed convolution with stride 2 + BN + ReLU back to the previous stage's width and a 3x3
    conv-BN-ReLU, then a 1x1 convolution to the ``K`` class logits. No skip connections: everything
    the decoder knows passes through the code. With ``base=64, depth=3`` the code of a 256x256
    slice is 512 x 32 x 32, the paper's 512 features.

    Parameters
    ----------
    n_classes : int
        ``K``, the classes of the label maps (background included), >= 1.
    dims : {2, 3}
        Spatial dimensions.
    base : int
        Width of the first stage.
    depth : int
        Number of poolings; spatial sizes must be divisible by ``2**depth`` (checked).
    latent_channels : int or None
        Channels ``C`` of the code; None: ``base * 2**depth``.

    Notes
    -----
    Weights are He-initialised. The input is a one-hot map (or the softmax of a segmenter's logits),
    values in [0, 1] summing to 1 over the class axis; the output is unnormalised logits.
    """

    def __init__(self, n_classes: int, *, dims: int = 2, base: int = 8, depth: int = 3,
                 latent_channels: int | None = None) -> None:
        super().__init__()
        check_positive(n_classes=n_classes, base=base, depth=depth)
        if latent_channels is not None:
            check_positive(latent_channels=latent_channels)
        self.n_classes = n_classes
        self.dims = check_dims(dims)
        self.depth = depth
        widths = [base * 2**i for i in range(depth + 1)]
        widths[-1] = latent_channels or widths[-1]
        self.latent_channels = widths[-1]
        encoder: list[nn.Module] = [ConvBNReLU(n_classes, widths[0], dims=dims)]
        for i in range(depth):
            encoder += [max_pool(dims), ConvBNReLU(widths[i], widths[i + 1], dims=dims)]
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = []
        for i in reversed(range(depth)):
            decoder += [_CONV_T[dims](widths[i + 1], widths[i], kernel_size=2, stride=2, bias=False),
                        _BN[dims](widths[i]), nn.ReLU(inplace=True), ConvBNReLU(widths[i], widths[i], dims=dims)]
        decoder.append(conv(dims, widths[0], n_classes, 1))
        self.decoder = nn.Sequential(*decoder)
        he_init(self)

    @property
    def size_multiple(self) -> int:
        """Spatial input sizes must be multiples of this (``2**depth``)."""
        return 2**self.depth

    def encode(self, masks: torch.Tensor) -> torch.Tensor:
        """``F``: codes ``(B, C, *S / 2**depth)`` of one-hot or softmax maps ``(B, K, *S)``."""
        check_input(masks, model=type(self).__name__, dims=self.dims, channels=self.n_classes,
                    multiple=self.size_multiple)
        return self.encoder(masks)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """``G``: class logits ``(B, K, *S)`` of codes ``(B, C, *S / 2**depth)``."""
        check_input(codes, model=f"{type(self).__name__}.decode", dims=self.dims, channels=self.latent_channels)
        return self.decoder(codes)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        """Reconstruction logits ``G(F(masks))`` ``(B, K, *S)`` of ``masks`` ``(B, K, *S)``."""
        return self.decode(self.encode(masks))


class HalvingDiscriminator(nn.Module):
    """Layers that halve the features and the spatial size, a 1x1 scoring convolution, the mean, a sigmoid.

    Layer ``i`` maps ``(B, c_i, *S_i)`` to ``(B, c_i / 2, *S_i / 2)``: a ``kernel_size`` convolution
    halving the features (no bias: batch norm follows), batch norm, 2x max-pooling, ReLU. A 1x1
    convolution then scores each remaining position (one logit; std ``1 / sqrt(features)`` at
    initialisation, the rest He-initialised), :meth:`logits` averages the scores over the positions
    (``(B,)``) and ``forward`` returns their sigmoid, the probability in (0, 1) that the input is
    real (1) rather than produced from a prediction (0).

    Parameters
    ----------
    in_channels : int
        Channels ``c_0`` entering the first halving layer; divisible by ``2**n_layers``.
    dims : {2, 3}
        Spatial dimensions.
    n_layers : int
        Halving layers; input spatial sizes must be divisible by ``2**n_layers`` (checked).
    kernel_size : int
        Odd kernel size of the halving convolutions.
    """

    def __init__(self, in_channels: int, *, dims: int = 2, n_layers: int = 3, kernel_size: int = 1) -> None:
        super().__init__()
        check_positive(in_channels=in_channels, n_layers=n_layers, kernel_size=kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if in_channels % 2**n_layers:
            raise ValueError(f"{type(self).__name__}: {n_layers} layer(s) halve the features {n_layers} time(s), so "
                             f"the features ({in_channels}) must be divisible by {2**n_layers}")
        self.dims = check_dims(dims)
        self.n_layers = n_layers
        self.in_channels = in_channels
        widths = [in_channels // 2**i for i in range(n_layers + 1)]
        self.layers = nn.ModuleList(
            nn.Sequential(_CONV[dims](widths[i], widths[i + 1], kernel_size, padding=kernel_size // 2, bias=False),
                          _BN[dims](widths[i + 1]), max_pool(dims), nn.ReLU(inplace=True))
            for i in range(n_layers))
        self.head = conv(dims, widths[-1], 1, 1)

    def _initialise(self) -> None:
        """He initialisation, but a linear fan-in scale (std ``1 / sqrt(features)``) for the scoring head.

        He's fan-out scale with a single output channel (std sqrt(2)) would start the sigmoid saturated.
        """
        he_init(self)
        nn.init.kaiming_normal_(self.head.weight, mode="fan_in", nonlinearity="linear")

    @property
    def size_multiple(self) -> int:
        """Spatial input sizes must be multiples of this (``2**n_layers``)."""
        return 2**self.n_layers

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """What runs before the halving layers (nothing here)."""
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The logit ``(B,)`` of each input being real; ``x`` is ``(B, in_channels, *S)``."""
        check_input(x, model=type(self).__name__, dims=self.dims, channels=self.in_channels,
                    multiple=self.size_multiple)
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x).flatten(1).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The probability ``(B,)``, in (0, 1), that each input ``(B, in_channels, *S)`` is real."""
        return torch.sigmoid(self.logits(x))


class LatentDiscriminator(HalvingDiscriminator):
    """The paper's shape-code discriminator ``D``: ``codes (B, C, *S) -> P(real) (B,)``.

    ``n_layers`` times: 1x1 convolution ``C_i -> C_i / 2``, batch norm, 2x max-pooling, ReLU; then a
    1x1 convolution to one logit per position, the global mean over positions and a sigmoid (see
    :class:`HalvingDiscriminator`). ``in_channels`` is the auto-encoder's ``latent_channels``
    (divisible by ``2**n_layers``); the code's spatial sizes must be divisible by ``2**n_layers``.
    He-initialised.
    """

    def __init__(self, in_channels: int, *, dims: int = 2, n_layers: int = 3) -> None:
        super().__init__(in_channels, dims=dims, n_layers=n_layers, kernel_size=1)
        self._initialise()


class MaskDiscriminator(HalvingDiscriminator):
    """Discriminator on label maps (the adversarial baseline): ``masks (B, K, *S) -> P(real) (B,)``.

    A 3x3 (3x3x3) conv-BN-ReLU lifts the ``K`` class channels of a one-hot or softmax map to
    ``width`` features; then ``n_layers`` halving layers with 3x3 kernels, the 1x1 scoring
    convolution, the global mean and a sigmoid (see :class:`HalvingDiscriminator`). ``width`` must
    be divisible by ``2**n_layers`` and the spatial sizes too. He-initialised.
    """

    def __init__(self, n_classes: int, *, dims: int = 2, n_layers: int = 4, width: int = 64) -> None:
        check_positive(n_classes=n_classes, width=width)
        super().__init__(width, dims=dims, n_layers=n_layers, kernel_size=3)
        self.in_channels = n_classes  # the input is the map; ``width`` features enter the halving layers
        self.lift = ConvBNReLU(n_classes, width, dims=dims)
        self._initialise()

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """The lift of the ``K`` class channels to ``width`` features, at full size."""
        return self.lift(x)
