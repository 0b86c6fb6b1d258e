import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from mskseg.nn.losses import (  # noqa: E402
    LOSSES,
    binary_cross_entropy,
    ce_plus_distance,
    cross_entropy,
    get_loss,
    inverse_frequency_weights,
    needs_weight_map,
    soft_dice,
    weight_map_cross_entropy,
    weighted_cross_entropy,
)


def _batch(seed: int = 0, b: int = 2, c: int = 3, shape=(6, 5)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, *shape, generator=g)
    target = torch.randint(0, c, (b, *shape), generator=g)
    return logits, target


def test_cross_entropy_equals_torch_and_sample_weights_weigh_samples() -> None:
    logits, target = _batch()
    assert torch.allclose(cross_entropy(logits, target), F.cross_entropy(logits, target))
    per = F.cross_entropy(logits, target, reduction="none").flatten(1).mean(1)
    w = torch.tensor([1.0, 1 / 3])
    expected = (per * w).sum() / w.sum()
    assert torch.allclose(cross_entropy(logits, target, sample_weight=w), expected)
    assert torch.allclose(cross_entropy(logits, target, sample_weight=torch.ones(2)), cross_entropy(logits, target))


def test_inverse_frequency_weights_and_weighted_ce_for_one_sample() -> None:
    target = torch.tensor([[0, 0, 0, 1, 1, 2]])
    w = inverse_frequency_weights(target, 4)
    raw = torch.tensor([6 / 3, 6 / 2, 6 / 1])
    assert torch.allclose(w[:3], raw / raw.mean()) and w[3] == 0
    logits = torch.randn(1, 4, 6)
    assert torch.allclose(weighted_cross_entropy(logits, target), F.cross_entropy(logits, target, weight=w))


def test_soft_dice_by_hand_and_near_zero_for_a_perfect_prediction() -> None:
    target = torch.tensor([[0, 1, 1, 0]])
    logits = torch.zeros(1, 2, 4)  # softmax 0.5 everywhere
    # foreground: intersection 0.5 + 0.5 = 1, sums 2 + 2: Dice = 2 * 1 / 4 = 0.5
    assert soft_dice(logits, target).item() == pytest.approx(0.5, abs=1e-5)
    perfect = F.one_hot(target, 2).movedim(-1, 1).float() * 40 - 20
    assert soft_dice(perfect, target).item() < 1e-6


def test_bce_equals_torch_on_one_hot_targets() -> None:
    logits, target = _batch(1)
    onehot = F.one_hot(target, 3).movedim(-1, 1).float()
    assert torch.allclose(binary_cross_entropy(logits, target), F.binary_cross_entropy_with_logits(logits, onehot))


def test_weight_map_terms() -> None:
    logits, target = _batch(2)
    ones = torch.ones_like(target, dtype=torch.float32)
    assert torch.allclose(weight_map_cross_entropy(logits, target, ones), cross_entropy(logits, target))
    wmap = torch.rand(target.shape, generator=torch.Generator().manual_seed(3)) * 10 + 1
    ce = F.cross_entropy(logits, target, reduction="none")
    assert torch.allclose(weight_map_cross_entropy(logits, target, wmap), (ce * wmap).mean())
    assert torch.allclose(ce_plus_distance(logits, target, wmap), ce.mean() + (ce * wmap).mean())
    with pytest.raises(ValueError, match="weight map"):
        weight_map_cross_entropy(logits, target, wmap[:, :2])


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_falls_when_fitting_a_fixed_batch(name: str) -> None:
    _, target = _batch(4, b=2, c=3, shape=(8, 8))
    logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    wmap = torch.rand(target.shape, generator=torch.Generator().manual_seed(5)) + 0.5
    loss_fn = get_loss(name)
    args = (wmap,) if needs_weight_map(name) else ()
    opt = torch.optim.Adam([logits], lr=0.1)
    first = loss_fn(logits, target, *args).item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(logits, target, *args)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_bad_inputs_raise() -> None:
    logits, target = _batch()
    with pytest.raises(ValueError, match="do not match"):
        cross_entropy(logits, target[:, :3])
    with pytest.raises(ValueError, match="target values"):
        soft_dice(logits, target + 3)
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("focal")


def test_soft_dice_pools_the_batch_and_weights_samples_by_hand() -> None:
    # sample 0 has foreground, sample 1 none; predictions 0.5 everywhere
    target = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]])
    logits = torch.zeros(2, 2, 4)
    # pooled: intersection 0.5 + 0.5 = 1; sums: prob 8 * 0.5 = 4, reference 2 -> Dice 2 / 6
    assert soft_dice(logits, target).item() == pytest.approx(1 - 2 / 6, abs=1e-5)
    # sample 1 weighted 1/3: prob sum 2 + 2/3, reference 2, intersection 1 -> Dice 2 / (14 / 3)
    weights = torch.tensor([1.0, 1 / 3])
    assert soft_dice(logits, target, sample_weight=weights).item() == pytest.approx(1 - 6 / 14, abs=1e-5)
    # an empty slice predicted empty costs nothing; a class absent everywhere and never predicted: Dice 1
    empty = F.one_hot(torch.zeros(1, 4, dtype=torch.long), 2).movedim(-1, 1).float() * 40 - 20
    assert soft_dice(empty, torch.zeros(1, 4, dtype=torch.long)).item() < 1e-6
