"""Brute-force references for the post-processing tests: explicit loops and shifts, no shortcuts."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
from scipy import ndimage


def ball_offsets(radius_mm, spacing):
    """Integer offsets o with |o * spacing| <= radius_mm (+1e-6), by enumeration."""
    half = [int(radius_mm // s) + 1 for s in spacing]
    return [o for o in itertools.product(*[range(-h, h + 1) for h in half])
            if np.sqrt(sum((a * s) ** 2 for a, s in zip(o, spacing, strict=True))) <= radius_mm + 1e-6]


def closing(mask, radius_mm, spacing):
    """Closing of a boolean mask with the ball, outside the array background: OR / AND of shifts."""
    offsets = ball_offsets(radius_mm, spacing)
    h = max(max(abs(a) for a in o) for o in offsets)
    pad = 2 * h
    p = np.pad(np.asarray(mask, bool), pad)
    dilated = np.zeros_like(p)
    for o in offsets:
        dilated |= np.roll(p, o, axis=(0, 1, 2))
    eroded = np.ones_like(p)
    for o in offsets:
        eroded &= np.roll(dilated, o, axis=(0, 1, 2))
    inner = tuple(slice(pad, pad + n) for n in mask.shape)
    return eroded[inner]


def holes(mask, background_rank):
    """Background voxels of mask not connected to the outside (background components of the map padded
    by one background layer; all but the one holding the padding)."""
    bg = np.pad(~np.asarray(mask, bool), 1, constant_values=True)
    lab, _ = ndimage.label(bg, ndimage.generate_binary_structure(3, background_rank))
    return (lab != lab[0, 0, 0])[1:-1, 1:-1, 1:-1] & ~np.asarray(mask, bool)


def reassign(labels, removed, rank):
    """Per island (component of removed voxels of one label): the most frequent non-removed neighbour label
    (ties: the smaller), background when none; loops over the islands."""
    st = ndimage.generate_binary_structure(3, rank)
    out = labels.copy()
    for value in np.unique(labels[removed & (labels != 0)]):
        lab, n = ndimage.label(removed & (labels == value), st)
        for i in range(1, n + 1):
            island = lab == i
            ring = ndimage.binary_dilation(island, st) & ~island & ~removed
            counts = Counter(labels[ring].tolist())
            if counts:
                best = max(counts.values())
                out[island] = min(v for v, c in counts.items() if c == best)
            else:
                out[island] = 0
    return out


def largest_kept(labels, values, rank):
    """Voxels of each value outside its largest component, by sizes of all components."""
    st = ndimage.generate_binary_structure(3, rank)
    removed = np.zeros(labels.shape, bool)
    for v in values:
        lab, n = ndimage.label(labels == v, st)
        if n > 1:
            sizes = [(np.count_nonzero(lab == i), -i) for i in range(1, n + 1)]
            keep = -max(sizes)[1]
            removed |= (lab > 0) & (lab != keep)
    return removed
