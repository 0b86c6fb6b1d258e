"""The segmentation networks of the papers, by name.

=================  =====================================================  ===========================
name               network                                                papers
=================  =====================================================  ===========================
``unet2d``         :class:`~.unet.UNet` (2D)                              Desai, Xu, Schock
``unet25d``        :class:`~.unet.UNet25D` (``n_slices`` in, centre out)  Desai
``unet3d``         :class:`~.unet.UNet` (``dims=3``)                      Desai
``segnet``         :class:`~.segnet.SegNet`                               Desai
``deeplabv3plus``  :class:`~.deeplab.DeepLabV3Plus`                       Desai
``vgg16unet``      :class:`~.vgg_unet.VGG16UNet`                          Luan
=================  =====================================================  ===========================

Every network maps ``(B, in_channels, *S)`` to logits ``(B, n_classes, *S)``, is built from
scratch with He initialisation and can load a local weights file (:mod:`mskseg.nn.weights`).
For ``unet25d``, ``in_channels`` is the channels of one slice; the network takes
``n_slices * in_channels`` channels.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from torch import nn

from mskseg.nn.models.deeplab import DeepLabV3Plus
from mskseg.nn.models.segnet import SegNet
from mskseg.nn.models.unet import UNet, UNet25D
from mskseg.nn.models.vgg_unet import VGG16UNet, load_vgg16_encoder

__all__ = ["MODELS", "DeepLabV3Plus", "SegNet", "UNet", "UNet25D", "VGG16UNet", "build_model", "count_parameters",
           "load_vgg16_encoder", "model_options"]


def _unet2d(in_channels: int, n_classes: int, *, base: int = 64, depth: int = 4, batch_norm: bool = True,
            dropout: float = 0.0, upsample: str = "transpose") -> UNet:
    """2D U-Net ``(B, in_channels, H, W) -> (B, n_classes, H, W)``."""
    return UNet(in_channels, n_classes, base=base, depth=depth, dims=2, batch_norm=batch_norm, dropout=dropout,
                upsample=upsample)


def _unet3d(in_channels: int, n_classes: int, *, base: int = 64, depth: int = 4, batch_norm: bool = True,
            dropout: float = 0.0, upsample: str = "transpose") -> UNet:
    """3D U-Net ``(B, in_channels, D, H, W) -> (B, n_classes, D, H, W)``."""
    return UNet(in_channels, n_classes, base=base, depth=depth, dims=3, batch_norm=batch_norm, dropout=dropout,
                upsample=upsample)


def _unet25d(in_channels: int, n_classes: int, *, n_slices: int = 3, base: int = 64, depth: int = 4,
             batch_norm: bool = True, dropout: float = 0.0, upsample: str = "transpose") -> UNet25D:
    """2.5D U-Net ``(B, n_slices * in_channels, H, W) -> (B, n_classes, H, W)`` (centre slice)."""
    return UNet25D(n_slices, n_classes, channels_per_slice=in_channels, base=base, depth=depth,
                   batch_norm=batch_norm, dropout=dropout, upsample=upsample)


#: factories ``(in_channels, n_classes, **options) -> nn.Module`` by name
MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet2d": _unet2d,
    "segnet": SegNet,
    "deeplabv3plus": DeepLabV3Plus,
    "vgg16unet": VGG16UNet,
    "unet25d": _unet25d,
    "unet3d": _unet3d,
}


def model_options(name: str) -> tuple[str, ...]:
    """The keyword options the model ``name`` accepts (besides ``in_channels`` and ``n_classes``)."""
    factory = _factory(name)
    return tuple(p.name for p in inspect.signature(factory).parameters.values() if p.kind is p.KEYWORD_ONLY)


def _factory(name: str) -> Callable[..., nn.Module]:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}") from None


def build_model(name: str, *, in_channels: int, n_classes: int, weights: str | os.PathLike | None = None,
                **options: object) -> nn.Module:
    """Build the network ``name`` of :data:`MODELS`, He-initialised or loaded from ``weights``.

    Parameters
    ----------
    name : str
        One of :data:`MODELS`.
    in_channels : int
        Input channels (for ``unet25d``: channels of one slice).
    n_classes : int
        Output classes (logit channels).
    weights : path or None
        A local state-dict file (:func:`mskseg.nn.weights.save_weights`) loaded strictly.
    **options
        The network's keyword options (see :func:`model_options`).

    Raises
    ------
    ValueError
        For an unknown name (listing the allowed ones), an option the network does not take
        (naming it and the allowed ones), or an invalid option value.
    """
    factory = _factory(name)
    allowed = model_options(name)
    bad = [key for key in options if key not in allowed]
    if bad:
        raise ValueError(f"model {name!r} has no option {', '.join(map(repr, bad))}; allowed: {', '.join(allowed)}")
    model = factory(in_channels, n_classes, **options)
    if weights is not None:
        from mskseg.nn.weights import load_weights

        load_weights(model, weights)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
