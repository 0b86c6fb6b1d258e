"""U-Net with a VGG16 encoder (Luan et al.; one network per anatomical plane).

* :class:`VGG16UNet` -- encoder: the 13 3x3 convolutions of VGG16 in 5 blocks of (2, 2, 3, 3, 3),
  widths ``base * (1, 2, 4, 8, 8)`` (64 ... 512 at ``base=64``), each conv followed by optional
  batch norm and ReLU, 2x2 max pooling between blocks. After block 5 a last pooling and two 3x3
  conv-BN-ReLU form the centre (1/32 resolution); five decoder stages (x2 upsampling,
  concatenation with the output of block 5, 4, ..., 1, two 3x3 conv-BN-ReLU) bring it back to
  the input size, and a 1x1 convolution gives the class logits. Inputs must be divisible by 32.
* :func:`load_vgg16_encoder` -- copy a local torchvision-style VGG16 (or VGG16-BN) state dict's
  ``features.*`` weights into the encoder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch
from torch import nn

from mskseg.nn.models.blocks import (
    ConvBNReLU,
    DoubleConv,
    UpBlock,
    check_dropout,
    check_input,
    check_positive,
    conv,
    he_init,
)

#: convolutions per VGG16 block and block widths in units of ``base``
VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG16_WIDTHS = (1, 2, 4, 8, 8)


class VGG16UNet(nn.Module):
    """U-Net with a VGG16 encoder: ``(B, in_channels, H, W) -> (B, n_classes, H, W)``, ``H, W % 32 == 0``.

    Parameters
    ----------
    in_channels : int
        Input channels (3 to load ImageNet weights unchanged; see :func:`load_vgg16_encoder`).
    n_classes : int
        Output classes.
    base : int
        Width of the first block (64 gives the widths of VGG16).
    batch_norm : bool
        Batch norm after every 3x3 convolution (VGG16-BN) or none (VGG16).
    dropout : float
        Dropout probability after the centre block.
    upsample : {"transpose", "interp"}
        Decoder upsampling, as for :class:`~mskseg.nn.models.unet.UNet`.

    Notes
    -----
    The encoder convolutions keep their bias even with batch norm, as torchvision's VGG16-BN does,
    so pretrained weights load exactly. Weights are He-initialised.
    """

    def __init__(self, in_channels: int, n_classes: int, *, base: int = 64, batch_norm: bool = True,
                 dropout: float = 0.0, upsample: str = "transpose") -> None:
        super().__init__()
        check_positive(in_channels=in_channels, n_classes=n_classes, base=base)
        check_dropout(dropout)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.batch_norm = batch_norm
        widths = [base * m for m in VGG16_WIDTHS]
        self.encoder = nn.ModuleList()
        previous = in_channels
        for w, n in zip(widths, VGG16_BLOCKS, strict=True):
            self.encoder.append(nn.Sequential(*(
                ConvBNReLU(previous if k == 0 else w, w, batch_norm=batch_norm, bias=True) for k in range(n))))
            previous = w
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.centre = DoubleConv(widths[-1], widths[-1], batch_norm=batch_norm, dropout=dropout)
        self.decoder = nn.ModuleList()
        for w in reversed(widths):
            self.decoder.append(UpBlock(previous, w, w, batch_norm=batch_norm, upsample=upsample))
            previous = w
        self.head = conv(2, widths[0], n_classes, 1)
        he_init(self)

    def encoder_layers(self) -> list[ConvBNReLU]:
        """The 13 encoder conv(-BN)-ReLU layers in VGG16 order."""
        return [layer for block in self.encoder for layer in block]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, n_classes, H, W)`` of ``x`` ``(B, in_channels, H, W)``, ``H`` and ``W`` divisible by 32."""
        check_input(x, model="VGG16UNet", dims=2, channels=self.in_channels, multiple=2 ** len(VGG16_BLOCKS))
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.centre(self.pool(x))
        for up, skip in zip(self.decoder, reversed(skips), strict=True):
            x = up(x, skip)
        return self.head(x)


def _read_state_dict(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if isinstance(source, Mapping):
        return source
    from mskseg.nn.weights import read_state_dict  # local import: weights imports nothing from here

    return read_state_dict(source)


def _vgg_layers(state: Mapping[str, torch.Tensor]) -> tuple[list[dict], list[dict]]:
    """Group ``features.<i>.<name>`` (or ``<i>.<name>``) entries into conv and BN layers, in order."""
    prefix = "features." if any(k.startswith("features.") for k in state) else ""
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.(\w+)$")
    layers: dict[int, dict] = {}
    for key, value in state.items():
        match = pattern.match(key)
        if match and isinstance(value, torch.Tensor):
            layers.setdefault(int(match[1]), {"index": int(match[1])})[match[2]] = value
    ordered = [layers[i] for i in sorted(layers)]
    convs = [p for p in ordered if "weight" in p and p["weight"].dim() == 4]
    norms = [p for p in ordered if "running_mean" in p]
    return convs, norms


def load_vgg16_encoder(model: VGG16UNet, source: str | os.PathLike | Mapping[str, torch.Tensor], *,
                       adapt_input_channels: bool = False) -> None:
    """Copy VGG16 ``features.*`` weights into ``model``'s encoder, in place.

    Parameters
    ----------
    model : VGG16UNet
        The network (``base=64`` for real VGG16 weights).
    source : path or mapping
        A local file holding a torchvision-style state dict of ``vgg16`` or ``vgg16_bn`` (the whole
        network or its ``features``; ``classifier.*`` entries are ignored), or such a mapping.
        Convolutions are matched to the 13 encoder convolutions in order of their layer index, and
        shapes must agree. Batch-norm layers of the file are matched to the convolution before
        them: copied into the model's batch norms, or, for a model without batch norm, folded into
        the convolution (exact in eval mode; torchvision's eps 1e-5). A model with batch norm loading plain VGG16 keeps
        its batch norms as initialised.
    adapt_input_channels : bool
        If true and only the first convolution's input channels differ (an MRI has 1 channel,
        ImageNet 3), its weights are summed over the file's input channels and shared equally by
        the model's, so an image repeated over the model's channels responds as a grey image
        repeated over RGB does in the original network.

    Raises
    ------
    ValueError
        Listing every mismatch (number of convolutions, shapes); nothing is copied then.
    """
    convs, norms = _vgg_layers(_read_state_dict(source))
    targets = model.encoder_layers()
    problems = []
    if len(convs) != len(targets):
        problems.append(f"expected {len(targets)} convolutions, found {len(convs)}")
    plan = []
    for k, (src, layer) in enumerate(zip(convs, targets, strict=False)):  # counts may differ: reported above
        weight = src["weight"]
        want = tuple(layer[0].weight.shape)
        if (k == 0 and adapt_input_channels and weight.shape[1] != want[1] and weight.shape[0] == want[0]
                and weight.shape[2:] == want[2:]):
            weight = weight.sum(dim=1, keepdim=True).repeat(1, want[1], 1, 1) / want[1]
        if tuple(weight.shape) != want:
            problems.append(f"conv {k + 1} (features.{src['index']}.weight): file {tuple(weight.shape)}, model {want}")
            continue
        bias = src.get("bias", torch.zeros(want[0]))
        nxt = convs[k + 1]["index"] if k + 1 < len(convs) else float("inf")
        norm = next((n for n in norms if src["index"] < n["index"] < nxt), None)
        if norm is not None and any(tuple(norm[p].shape) != (want[0],) for p in ("weight", "bias", "running_mean",
                                                                                    "running_var")):
            problems.append(f"batch norm after conv {k + 1} (features.{norm['index']}): wrong size")
            continue
        plan.append((layer, weight, bias, norm))
    if problems:
        raise ValueError("VGG16 weights do not fit the encoder: " + "; ".join(problems))
    with torch.no_grad():
        for layer, conv_weight, conv_bias, norm in plan:
            conv_, bn = layer[0], (layer[1] if isinstance(layer[1], nn.BatchNorm2d) else None)
            weight, bias = conv_weight, conv_bias
            if norm is not None and bn is None:  # fold: gamma * (w x + b - mean) / sqrt(var + eps) + beta
                scale = norm["weight"] / torch.sqrt(norm["running_var"] + 1e-5)
                weight = conv_weight * scale.view(-1, 1, 1, 1)
                bias = (conv_bias - norm["running_mean"]) * scale + norm["bias"]
            conv_.weight.copy_(weight)
            conv_.bias.copy_(bias)
            if norm is not None and bn is not None:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn, name).copy_(norm[name])
