import pytest
import torch

from ae_lab.data import Binarize, GaussianNoise, NoCorruption, PixelMask


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_none_is_identity(x):
    assert torch.equal(NoCorruption()(x), x)


def test_binarize_thresholds(x):
    out = Binarize(threshold=0.7)(x)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out.bool(), x > 0.7)


def test_gaussian_adds_noise_of_the_given_std_and_stays_in_range():
    x = torch.full((256, 1, 28, 28), 0.5)
    out = GaussianNoise(std=0.1)(x, generator=torch.Generator().manual_seed(1))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert (out - x).std().item() == pytest.approx(0.1, rel=0.05)


def test_gaussian_is_seeded(x):
    a = GaussianNoise(0.3)(x, generator=torch.Generator().manual_seed(5))
    b = GaussianNoise(0.3)(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_mask_drops_pixels_with_probability_p():
    x = torch.ones(128, 1, 28, 28)
    out = PixelMask(p=0.3)(x, generator=torch.Generator().manual_seed(2))
    assert set(out.unique().tolist()) == {0.0, 1.0}
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.01)


def test_corruptions_do_not_touch_their_input(x):
    before = x.clone()
    for corrupt in (Binarize(), GaussianNoise(), PixelMask()):
        corrupt(x)
    assert torch.equal(x, before)
