"""Training-image augmentation: flips and light, each seeded, each off by default."""

import math

import torch

from aepipe.model.augmentation import augment, augmenting, photometric_jitter, random_flips
from aepipe.params import load_params
from conftest import REPO


def test_random_flips_mirror_each_image_its_own_way_and_repeat_with_the_seed():
    images = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    flipped = random_flips(images, torch.Generator().manual_seed(3))
    again = random_flips(images, torch.Generator().manual_seed(3))
    assert torch.equal(flipped, again)
    ways = {tuple(image.flatten().tolist()) for image in flipped}
    expected = {
        tuple(view.flatten().tolist())
        for view in (images[0], images[0].flip(-1), images[0].flip(-2), images[0].flip(-1).flip(-2))
    }
    assert ways == expected, "all four mirror images occur, and nothing else"


def gradient(count: int) -> torch.Tensor:
    """(count, 3, 16, 16) images of one horizontal ramp from 0.2 to 0.8."""
    return torch.linspace(0.2, 0.8, 16).view(1, 1, 1, 16).expand(count, 3, 16, 16).contiguous()


def test_photometric_jitter_changes_each_images_light_within_its_strength_and_with_the_seed():
    images = gradient(200)
    jittered = photometric_jitter(images, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(jittered, photometric_jitter(images, 0.2, torch.Generator().manual_seed(0)))
    assert 0 <= jittered.min() and jittered.max() <= 1
    means = jittered.mean(dim=(1, 2, 3))
    assert means.std() > 0.03, "images get lights of their own"
    # Darkest change: gamma e^0.2, then 0.8 of the brightness; brightest: gamma e^-0.2, 1.2 of it.
    assert (
        0.5 ** math.exp(0.2) * 0.8 - 0.01 < means.min()
        and means.max() < 0.5 ** math.exp(-0.2) * 1.2 + 0.01
    )
    assert torch.equal(jittered[:, 0], jittered[:, 1]), (
        "one change for all channels: colour is kept"
    )


def test_augment_applies_the_levers_that_are_on_and_none_by_default():
    params = load_params(REPO / "params.yaml").train
    assert not augmenting(params), "params.yaml's recipe trains on the images as they are"
    images = gradient(8)
    on = params.model_copy(update={"flips": True, "photometric": 0.2})
    assert augmenting(on)
    generator = torch.Generator().manual_seed(1)
    expected = photometric_jitter(random_flips(images, generator), 0.2, generator)
    assert torch.equal(augment(images, on, torch.Generator().manual_seed(1)), expected)
