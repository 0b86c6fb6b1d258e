"""The knee paper's deep 3D shape regression network (its Fig. 3): a crop -> landmark coordinates.

``(B, in_channels, D, H, W)`` (a crop resampled to a cube, 88^3 in the paper) passes through a fully
convolutional feature extractor without fully connected layers:

=====  ==========================================================================================
1-3    a separable 5x5x5 convolution + ReLU, a 3x3x3 convolution with stride 2 (downsampling,
       sizes halved rounding up), instance norm + ReLU; ``base``, ``2 base``, ``4 base`` channels
4-5    a separable 3x3x3 convolution + ReLU, ``4 base`` channels
6      a 1x1x1 convolution to ``sum(K_l + 9)`` channels, averaged over space -> ``(B, sum(K_l + 9))``
=====  ==========================================================================================

The vector is cut into one ``K_l + 9`` slice per :class:`~mskseg.nn.models.pca_layer.PCALayer`
(one layer: the paper's single-bone network; two: its multi-shape variant, femur and tibia from the
whole volume) and each layer turns its slice into ``N_l`` points. The output concatenates them
along the points: ``(B, sum N_l, 3)``; :meth:`ShapeRegressionNet.split_points` cuts it per layer.

"Separated" convolutions (the paper's word) are ``separable="spatial"`` by default: a k x k x k
kernel factorised along the axes into k x 1 x 1 and 1 x k x 1 (in -> in channels) and 1 x 1 x k
(in -> out), the channels widened last where it is cheapest; ``separable="depthwise"`` is the other
reading, a depthwise k x k x k convolution followed by a pointwise 1 x 1 x 1 one.
The last convolution starts with small weights (``head_init_std``) and zero bias, so an untrained
network puts every layer's (base-scaled, ``R0``-rotated) mean shape at the origin of the output frame
(a crop's centre), while gradients still reach every layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mskseg.nn.models.blocks import check_input, check_positive, he_init
from mskseg.nn.models.pca_layer import PCALayer

__all__ = ["SEPARABLE", "SeparableConv3d", "ShapeRegressionNet"]

#: the two readings of the paper's "separated" convolutions
SEPARABLE = ("spatial", "depthwise")
#: the strided convolutions halve each size (rounding up): three of them need sizes of at least this
#: for the last instance norm to see more than one voxel
MIN_SIZE = 9


class SeparableConv3d(nn.Sequential):
    """A k x k x k convolution in separable form, 'same' padding, stride 1: ``(B, in, *S) -> (B, out, *S)``.

    ``mode="spatial"``: k x 1 x 1, 1 x k x 1 (in -> in) and 1 x 1 x k (in -> out) convolutions;
    ``mode="depthwise"``: a depthwise k x k x k convolution (groups = in) and a pointwise 1 x 1 x 1 (in -> out).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, mode: str = "spatial") -> None:
        check_positive(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        k, p = kernel_size, kernel_size // 2
        if mode == "spatial":
            layers = [nn.Conv3d(in_channels, in_channels, (k, 1, 1), padding=(p, 0, 0), bias=False),
                      nn.Conv3d(in_channels, in_channels, (1, k, 1), padding=(0, p, 0), bias=False),
                      nn.Conv3d(in_channels, out_channels, (1, 1, k), padding=(0, 0, p))]
        elif mode == "depthwise":
            layers = [nn.Conv3d(in_channels, in_channels, k, padding=p, groups=in_channels, bias=False),
                      nn.Conv3d(in_channels, out_channels, 1)]
        else:
            raise ValueError(f"separable must be one of {', '.join(SEPARABLE)}; got {mode!r}")
        super().__init__(*layers)


def _down_block(in_channels: int, out_channels: int, separable: str) -> nn.Sequential:
    """Layers 1-3: separable 5x5x5 + ReLU, strided 3x3x3 convolution, instance norm + ReLU (sizes halved)."""
    return nn.Sequential(
        SeparableConv3d(in_channels, out_channels, 5, mode=separable), nn.ReLU(inplace=True),
        nn.Conv3d(out_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.InstanceNorm3d(out_channels, affine=True), nn.ReLU(inplace=True))


class ShapeRegressionNet(nn.Module):
    """Crop ``(B, in_channels, D, H, W)`` -> landmarks ``(B, sum N_l, 3)`` through PCA layers (module docstring).

    Parameters
    ----------
    pca_layers : PCALayer or sequence of PCALayer
        One layer per shape (bone); their parameter vectors are predicted side by side.
    in_channels : int
        Input channels (the image; e.g. also the pre-segmentation's class probabilities).
    base : int
        Channels of the first block (then ``2 base``, ``4 base``).
    separable : {"spatial", "depthwise"}
        The form of the separable convolutions.
    head_init_std : float
        Standard deviation of the last convolution's initial weights (its bias starts at zero).
    """

    def __init__(self, pca_layers: PCALayer | Sequence[PCALayer], *, in_channels: int = 1, base: int = 16,
                 separable: str = "spatial", head_init_std: float = 1e-3) -> None:
        super().__init__()
        layers = [pca_layers] if isinstance(pca_layers, PCALayer) else list(pca_layers)
        if not layers or not all(isinstance(layer, PCALayer) for layer in layers):
            raise ValueError("pca_layers must be a PCALayer or a non-empty sequence of them")
        check_positive(in_channels=in_channels, base=base)
        if separable not in SEPARABLE:
            raise ValueError(f"separable must be one of {', '.join(SEPARABLE)}; got {separable!r}")
        if not head_init_std >= 0:
            raise ValueError(f"head_init_std must not be negative, got {head_init_std!r}")
        self.in_channels, self.base, self.separable = in_channels, base, separable
        widths = (base, 2 * base, 4 * base)
        blocks: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            blocks.append(_down_block(previous, width, separable))
            previous = width
        for _ in range(2):
            blocks.append(nn.Sequential(SeparableConv3d(previous, previous, 3, mode=separable), nn.ReLU(inplace=True)))
        self.features = nn.Sequential(*blocks)
        self.head = nn.Conv3d(previous, sum(layer.n_params for layer in layers), 1)
        self.pca_layers = nn.ModuleList(layers)
        he_init(self.features)
        nn.init.normal_(self.head.weight, std=head_init_std)
        nn.init.zeros_(self.head.bias)

    @property
    def point_counts(self) -> tuple[int, ...]:
        """``N_l`` of each PCA layer, in order."""
        return tuple(layer.n_points for layer in self.pca_layers)

    def parameters_of(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted shape parameters ``(B, sum(K_l + 9))`` of crops ``(B, in_channels, D, H, W)``."""
        check_input(x, model="ShapeRegressionNet", dims=3, channels=self.in_channels, min_size=MIN_SIZE)
        return self.head(self.features(x)).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Crops ``(B, in_channels, D, H, W)`` -> every layer's points, concatenated: ``(B, sum N_l, 3)``."""
        params = self.parameters_of(x).split([layer.n_params for layer in self.pca_layers], dim=1)
        return torch.cat([layer(p) for layer, p in zip(self.pca_layers, params, strict=True)], dim=1)

    def split_points(self, points: torch.Tensor) -> list[torch.Tensor]:
        """Points ``(..., sum N_l, 3)`` -> one ``(..., N_l, 3)`` per PCA layer."""
        return list(points.split(self.point_counts, dim=-2))
