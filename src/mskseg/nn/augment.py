"""Random data augmentation of 2D slices and 3D patches (the papers' spatial and intensity transforms).

One :class:`Augmenter` applies, to one sample, in this order:

1. an affine transform in voxel space (isotropic zoom, rotation, shear; one resampling with
   :func:`scipy.ndimage.affine_transform` about the array centre: image linear, target nearest,
   weight linear; outside values image minimum / 0 (background) / 1.0);
2. an elastic deformation (TorchIO's ``RandomElasticDeformation``: cubic B-spline displacement
   of a coarse control-point grid with locked borders; 2D slices are deformed as ``(C, H, W, 1)``
   with no displacement along the last axis; image and weight linear, target nearest; the rare
   points mapped from outside take each array's minimum); the sample then weighs
   ``deformed_weight`` (1/3 in the hip paper, after MPUNet);
3. gamma: intensities rescaled to [0, 1] by the sample's minimum and maximum, raised to
   ``exp(U(-gamma, gamma))`` and rescaled back (TorchIO's ``RandomGamma`` raises the raw
   intensities, so it is not used);
4. contrast: intensities scaled about the sample mean by ``U(1 - contrast, 1 + contrast)``;
5. motion blur: a linear kernel of 3..7 voxels in a random direction (Desai et al.), edges replicated.

Transforms 1 (each of zoom, rotation and shear), 3 and 4 are each applied with probability ``p``;
2 and 5 with their own probabilities ``elastic`` and ``motion_blur``. Every random draw comes from
the ``numpy.random.Generator`` passed in; TorchIO's draws from torch's global RNG happen inside
:func:`torch.random.fork_rng` seeded from that generator, so the same generator state gives the
same output in any process. The target keeps only its original class indices; the weight stays >= 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from mskseg.nn.settings import BLUR_LENGTHS, AugmentSettings


class Augmenter:
    """Applies :class:`AugmentSettings` to samples of ``dims`` (2 or 3) spatial dimensions.

    Call it with ``image`` ``(C, *S)``, ``target`` ``(*S)`` (class indices), ``weight`` ``(*S)`` and a
    ``numpy.random.Generator``; it returns ``(image float32, target int64, weight float32,
    sample_weight)`` of the same shapes. The inputs are not modified.
    """

    def __init__(self, settings: AugmentSettings, dims: int) -> None:
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims!r}")
        self.settings = settings
        self.dims = dims

    def __repr__(self) -> str:
        return f"Augmenter({self.settings!r}, dims={self.dims})"

    def __call__(self, image: np.ndarray, target: np.ndarray, weight: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        self._check(image, target, weight)
        s = self.settings
        image = np.asarray(image, dtype=np.float32)
        target = np.asarray(target, dtype=np.int64)
        weight = np.asarray(weight, dtype=np.float32)
        sample_weight = 1.0
        if s.affine:
            matrix = self._affine_matrix(rng)
            if matrix is not None:
                image, target, weight = _apply_affine(image, target, weight, matrix)
        if s.elastic > 0 and rng.random() < s.elastic and s.elastic_max_displacement > 0:
            image, target, weight = self._elastic(image, target, weight, int(rng.integers(0, 2**63 - 1)))
            sample_weight = float(s.deformed_weight)
        if s.gamma > 0 and rng.random() < s.p:
            image = _gamma(image, math.exp(rng.uniform(-s.gamma, s.gamma)))
        if s.contrast > 0 and rng.random() < s.p:
            mean = image.mean(dtype=np.float64)
            image = ((image - mean) * rng.uniform(1 - s.contrast, 1 + s.contrast) + mean).astype(np.float32)
        if s.motion_blur > 0 and rng.random() < s.motion_blur:
            image = _motion_blur(image, _blur_offsets(rng, self.dims))
        return image, target, weight, sample_weight

    def _check(self, image: np.ndarray, target: np.ndarray, weight: np.ndarray) -> None:
        if image.ndim != self.dims + 1 or target.shape != image.shape[1:] or weight.shape != target.shape:
            raise ValueError(f"a {self.dims}D sample needs image (C, *S), target (*S) and weight (*S); got "
                             f"{image.shape}, {target.shape} and {weight.shape}")

    def _affine_matrix(self, rng: np.random.Generator) -> np.ndarray | None:
        """Forward matrix (zoom * rotation * shear) in array axes, or None when no component was drawn."""
        s, d = self.settings, self.dims
        matrix = np.eye(d)
        drawn = False
        if s.scale > 0 and rng.random() < s.p:
            matrix = matrix * rng.uniform(1 - s.scale, 1 + s.scale)
            drawn = True
        if s.rotation_deg > 0 and rng.random() < s.p:
            angles = np.deg2rad(rng.uniform(-s.rotation_deg, s.rotation_deg, size=1 if d == 2 else 3))
            matrix = matrix @ _rotation(angles)
            drawn = True
        if s.shear_deg > 0 and rng.random() < s.p:
            shear = np.eye(d)
            pairs = [(0, 1)] if d == 2 else [(0, 1), (0, 2), (1, 2)]
            for (a, b), angle in zip(pairs, rng.uniform(-s.shear_deg, s.shear_deg, size=len(pairs)), strict=True):
                shear[a, b] = math.tan(math.radians(angle))
            matrix = matrix @ shear
            drawn = True
        return matrix if drawn else None

    def _elastic(self, image: np.ndarray, target: np.ndarray, weight: np.ndarray, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import torch
        import torchio as tio  # imported here: slow to import and only needed for this transform

        s = self.settings
        two_d = self.dims == 2
        d = float(s.elastic_max_displacement)

        def as4d(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array[..., None] if two_d else array))

        subject = tio.Subject(image=tio.ScalarImage(tensor=as4d(image)),
                              target=tio.LabelMap(tensor=as4d(target[None])),
                              weight=tio.ScalarImage(tensor=as4d(weight[None])))
        transform = tio.RandomElasticDeformation(num_control_points=s.elastic_control_points,
                                                 max_displacement=(d, d, 0.0) if two_d else (d, d, d),
                                                 locked_borders=2, image_interpolation="linear",
                                                 label_interpolation="nearest")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = transform(subject)

        def back(key: str) -> np.ndarray:
            array = out[key].data.numpy()
            return array[..., 0] if two_d else array

        new_target = np.rint(back("target")[0]).astype(np.int64)
        return back("image").astype(np.float32), new_target, np.maximum(back("weight")[0], 0).astype(np.float32)


def build_augmenter(settings: AugmentSettings | None, dims: int) -> Augmenter | None:
    """An :class:`Augmenter` for ``settings``, or None when no transform is enabled (or ``settings`` is None)."""
    if settings is None or not settings.enabled:
        return None
    return Augmenter(settings, dims)


def _rotation(angles: np.ndarray) -> np.ndarray:
    """2D rotation by ``angles[0]``, or 3D rotation about axes 0, 1, 2 by ``angles`` (radians)."""
    if len(angles) == 1:
        c, s = math.cos(angles[0]), math.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    out = np.eye(3)
    for axis, angle in enumerate(angles):
        a, b = [i for i in range(3) if i != axis]
        r = np.eye(3)
        c, s = math.cos(angle), math.sin(angle)
        r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
        out = out @ r
    return out


def _apply_affine(image: np.ndarray, target: np.ndarray, weight: np.ndarray, forward: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample with ``output(o) = input(M (o - c) + c)``, ``M = forward^-1``, ``c`` the array centre."""
    inverse = np.linalg.inv(forward)
    centre = (np.asarray(target.shape, dtype=float) - 1) / 2
    offset = centre - inverse @ centre

    def resample(array: np.ndarray, order: int, cval: float, dtype: type) -> np.ndarray:
        return ndimage.affine_transform(array, inverse, offset, order=order, mode="constant", cval=cval,
                                        output=dtype, prefilter=False)

    low = float(image.min())
    new_image = np.stack([resample(channel, 1, low, np.float32) for channel in image])
    new_target = resample(target, 0, 0, np.int64)
    new_weight = np.maximum(resample(weight, 1, 1.0, np.float32), 0)
    return new_image, new_target, new_weight


def _gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """``((x - lo) / (hi - lo)) ** gamma`` rescaled back to ``[lo, hi]``; a constant image is unchanged."""
    lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        return image
    unit = np.clip((image - lo) / (hi - lo), 0, 1)
    return (unit**gamma * (hi - lo) + lo).astype(np.float32)


def _blur_offsets(rng: np.random.Generator, dims: int) -> list[tuple[tuple[int, ...], float]]:
    """Voxel offsets and weights (summing to 1) of a line kernel of random length and direction."""
    length = int(rng.integers(BLUR_LENGTHS[0], BLUR_LENGTHS[1] + 1))
    direction = rng.normal(size=dims)
    direction /= max(float(np.linalg.norm(direction)), 1e-12)
    half = (length - 1) / 2
    counts: dict[tuple[int, ...], int] = {}
    for t in np.linspace(-half, half, 4 * length):
        key = tuple(int(v) for v in np.rint(t * direction))
        counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values())
    return [(key, n / total) for key, n in sorted(counts.items())]


def _motion_blur(image: np.ndarray, offsets: list[tuple[tuple[int, ...], float]]) -> np.ndarray:
    """Each channel convolved with the sparse kernel ``offsets`` (edges replicated)."""
    radius = max(abs(v) for key, _ in offsets for v in key)
    spatial = image.shape[1:]
    padded = np.pad(image, [(0, 0)] + [(radius, radius)] * len(spatial), mode="edge")
    out = np.zeros(image.shape, dtype=np.float64)
    for key, w in offsets:
        window = tuple(slice(radius + k, radius + k + n) for k, n in zip(key, spatial, strict=True))
        out += w * padded[(slice(None), *window)]
    return out.astype(np.float32)
