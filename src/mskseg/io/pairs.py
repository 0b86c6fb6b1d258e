"""Reading an image with its mask under a dataset's mask-header policy."""

from __future__ import annotations

from dataclasses import dataclass

from mskseg.volume import Volume

MASK_GEOMETRY_POLICIES = ("check", "from_image")


class GeometryError(ValueError):
    """Image and mask do not share a grid (the message says how)."""


@dataclass(frozen=True)
class HeaderFix:
    """What re-headering changed (empty ``changes`` when the headers already agreed)."""

    changes: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def apply_mask_geometry(image: Volume, mask: Volume, policy: str) -> tuple[Volume, HeaderFix]:
    """Return the mask to use with ``image`` under ``policy`` (see :mod:`mskseg.io.layouts`).

    ``from_image`` re-headers a mask whose array has the image's shape and reports what it
    changed; a different shape raises :class:`GeometryError`. ``check`` returns the mask
    untouched (quality control compares the geometry).
    """
    if policy not in MASK_GEOMETRY_POLICIES:
        raise ValueError(f"mask_geometry must be one of {MASK_GEOMETRY_POLICIES}, not {policy!r}")
    if policy == "check":
        return mask, HeaderFix(())
    if mask.shape != image.shape:
        raise GeometryError(f"mask size {mask.shape} differs from image size {image.shape}; "
                            "cannot take the mask's geometry from the image")
    return mask.with_geometry_of(image), HeaderFix(tuple(mask.geometry_mismatches(image)))
