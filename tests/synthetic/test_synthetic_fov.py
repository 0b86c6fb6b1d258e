"""The opt-in field-of-view jitter: seeded shifts along SI, the anatomy untouched, no jitter = today's phantoms."""

from __future__ import annotations

import numpy as np
import pytest
from synth_testutils import subject

from mskseg.synthetic import KINDS, generate_subject
from mskseg.synthetic.generate import fov_shift_mm

SMALL = {"knee": ((24, 40, 40), (3.0, 3.0, 3.0)), "hip": ((32, 24, 32), (6.0, 6.0, 6.0)),
         "ankle": ((24, 36, 36), (4.0, 4.0, 4.0))}


@pytest.mark.parametrize("kind", KINDS)
def test_no_jitter_is_the_phantom_of_old(kind: str) -> None:
    shape, spacing = SMALL[kind]
    plain = subject(kind, 2, 5, shape, spacing, False, 20)
    zero = generate_subject(kind, 2, seed=5, shape=shape, spacing=spacing, n_landmarks=20, fov_jitter_mm=0.0)
    assert np.array_equal(plain.image.array, zero.image.array) and np.array_equal(plain.mask.array, zero.mask.array)
    assert plain.image.origin == zero.image.origin and plain.params == zero.params
    assert "fov_shift_mm" not in zero.params
    assert fov_shift_mm(kind, 2, 5, 0.0) == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_jitter_moves_the_field_of_view_along_si_only(kind: str) -> None:
    shape, spacing = SMALL[kind]
    plain = subject(kind, 3, 5, shape, spacing, False, 20)
    moved = generate_subject(kind, 3, seed=5, shape=shape, spacing=spacing, n_landmarks=20, fov_jitter_mm=15.0)
    shift = moved.params["fov_shift_mm"]
    assert shift == fov_shift_mm(kind, 3, 5, 15.0) and -15.0 <= shift <= 15.0 and shift != 0.0
    assert np.allclose(np.subtract(moved.image.origin, plain.image.origin), [0.0, 0.0, shift])
    assert moved.mask.origin == moved.image.origin
    # the same anatomy, appearance and true landmarks: only the field of view moved
    assert moved.params["anatomy"] == plain.params["anatomy"]
    assert moved.params["appearance"] == plain.params["appearance"]
    assert moved.landmarks.equals(plain.landmarks)
    assert not np.array_equal(moved.mask.array, plain.mask.array)


def test_shifts_are_seeded_and_spread() -> None:
    shifts = [fov_shift_mm("knee", i, 1, 12.0) for i in range(40)]
    assert shifts == [fov_shift_mm("knee", i, 1, 12.0) for i in range(40)]
    assert max(shifts) > 8.0 and min(shifts) < -8.0 and all(abs(s) <= 12.0 for s in shifts)
    assert fov_shift_mm("knee", 0, 2, 12.0) != shifts[0] and fov_shift_mm("hip", 0, 1, 12.0) != shifts[0]
    with pytest.raises(ValueError, match="fov_jitter_mm"):
        fov_shift_mm("knee", 0, 1, -1.0)
    with pytest.raises(ValueError, match="unknown kind"):
        fov_shift_mm("elbow", 0, 1, 1.0)
