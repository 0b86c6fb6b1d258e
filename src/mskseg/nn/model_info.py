"""What predicting with a trained model needs besides its weights, kept in a JSON sidecar.

One model is trained per view (a plane, ``mpr`` for the multi-planar U-Net, ``3d`` for patches);
:class:`ModelInfo` records its network, classes, view and the geometry its inputs need (slice size,
the multi-planar views and pixel size, the patch size).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mskseg.io.atomic import write_text
from mskseg.nn.models import build_model
from mskseg.nn.weights import load_weights


@dataclass(frozen=True)
class ModelInfo:
    """What predicting with a trained model needs besides its weights."""

    method: str
    view: str                      # sagittal | coronal | axial | mpr | 3d
    network: dict[str, Any]        # build_model name and options
    n_classes: int
    label_values: list[int]
    n_slices: int = 1
    multiple: int = 16
    slice_size: list[int] | None = None          # 2D training slice size (multi-planar: [dim, dim])
    views: list[list[float]] | None = None       # multi-planar view normals
    pixel_mm: float | None = None                # multi-planar pixel size
    inference_span: str = "diagonal"             # multi-planar prediction slices' span (diagonal | train)
    max_offset_fraction: float | None = None     # multi-planar training slices' offsets along the normal
    patch_size: list[int] | None = None          # 3D
    overlap: float = 0.5
    train_subjects: list[str] | None = None
    val_subjects: list[str] | None = None

    def write(self, path: str | os.PathLike) -> None:
        write_text(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, path: str | os.PathLike) -> ModelInfo:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{path}: not a model description written by mskseg ({err})") from None

    def with_(self, **changes: Any) -> ModelInfo:
        """A copy with ``changes``."""
        return replace(self, **changes)

    def build(self) -> nn.Module:
        options = {k: v for k, v in self.network.items() if k not in ("name", "weights")}
        return build_model(self.network["name"], in_channels=1, n_classes=self.n_classes, **options)


def load_trained(weights: str | os.PathLike, info_path: str | os.PathLike, device: torch.device
                 ) -> tuple[nn.Module, ModelInfo]:
    """A trained model (in eval mode, on ``device``) and its description."""
    info = ModelInfo.read(info_path)
    model = info.build()
    load_weights(model, weights)
    return model.to(device).eval(), info


__all__ = ["ModelInfo", "load_trained"]
