"""The latent-code figure (SPAR paper, Figure 3): epochs chosen, PCA plane, PNG written, bad files refused."""

from __future__ import annotations

import numpy as np
import pytest

from mskseg.reporting.latents import chosen_epochs, pca_2d, plot_latents, read_latents


def latents_file(path, epochs=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), n=12, channels=8, seed=0):
    """Reference codes fixed, predicted codes moving towards them epoch by epoch."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(n, channels))
    parts = {"epoch": [], "kind": [], "subject": [], "slice": [], "codes": []}
    for e in epochs:
        pred = ref + rng.normal(3.0 / e, 0.2, size=(n, channels))
        for kind, codes in (("pred", pred), ("ref", ref)):
            parts["epoch"].append(np.full(n, e))
            parts["kind"].append(np.full(n, kind))
            parts["subject"].append(np.full(n, "s1"))
            parts["slice"].append(np.arange(n))
            parts["codes"].append(codes.astype(np.float32))
    np.savez(path, **{k: np.concatenate(v) for k, v in parts.items()})
    return path


def test_plot_latents_writes_a_png(tmp_path):
    out = plot_latents(latents_file(tmp_path / "latents.npz"), tmp_path / "fig" / "latents.png", title="spar")
    assert out == tmp_path / "fig" / "latents.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]
    one = plot_latents(latents_file(tmp_path / "one.npz", epochs=(3,), n=1, channels=1), tmp_path / "one.png")
    assert one.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chosen_epochs_keep_first_and_last():
    assert chosen_epochs(range(1, 11), 6) == [1, 3, 5, 6, 8, 10]
    assert chosen_epochs([2, 1, 2, 3], 6) == [1, 2, 3]
    assert chosen_epochs(range(1, 11), 1) == [1]
    assert chosen_epochs(range(1, 11), 2) == [1, 10]
    with pytest.raises(ValueError, match="max_panels"):
        chosen_epochs([1], 0)


def test_pca_plane_of_the_codes():
    rng = np.random.default_rng(1)
    codes = np.outer(rng.normal(size=50), [3.0, 4.0, 0.0]) + 0.01 * rng.normal(size=(50, 3))
    coords, fractions = pca_2d(codes)
    assert coords.shape == (50, 2) and fractions[0] > 0.99 and fractions.sum() <= 1.0 + 1e-12
    np.testing.assert_allclose(np.abs(coords[:, 0]), np.abs(codes - codes.mean(0)) @ [0.6, 0.8, 0.0], atol=0.05)
    assert np.all(pca_2d(np.ones((3, 1)))[0] == 0)


def test_bad_latents_files_are_refused(tmp_path):
    empty = tmp_path / "empty.npz"  # as a training that recorded no epoch writes it
    np.savez(empty, epoch=np.zeros(0, np.int64), kind=np.zeros(0, "<U4"), subject=np.zeros(0, "<U1"),
             slice=np.zeros(0, np.int64), codes=np.zeros((0, 0), np.float32))
    with pytest.raises(ValueError, match=r"empty\.npz: holds no latent codes"):
        plot_latents(empty, tmp_path / "x.png")
    np.savez(tmp_path / "other.npz", codes=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"other\.npz: not a latents file, it lacks epoch, kind, subject, slice"):
        read_latents(tmp_path / "other.npz")
    assert not (tmp_path / "x.png").exists()
