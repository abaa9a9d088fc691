"""An inspection set's map blur chosen on synthetic defects in its calibration images
(aepipe.anomaly.blur_choice): the blur that finds them best, the same for the same seed."""

import pytest
import torch

from aepipe.anomaly.blur_choice import SIGMAS, _with_defects, best_blur, choose_map_sigma
from aepipe.errors import AepipeError
from aepipe.gaussian_blur import smoothed
from aepipe.model.autoencoder import AutoEncoder


def maps_of_noise(count: int, generator: torch.Generator, smooth: float) -> torch.Tensor:
    """Gaussian noise of std 0.1 per pixel, or smooth (blurred by `smooth` px, std 0.1 again): a
    blur cannot average the smooth kind away."""
    noise = torch.randn(count, 32, 32, generator=generator)
    noise = smoothed(noise, smooth) if smooth else noise
    return 0.1 * noise / noise.std()


def test_a_thin_defect_is_found_best_unblurred_and_a_faint_wide_one_blurred():
    generator = torch.Generator().manual_seed(0)
    clean, cracked = (
        maps_of_noise(200, generator, smooth=4),
        maps_of_noise(200, generator, smooth=4),
    )
    cracked[:, 16, 4:28] += 0.1  # one pixel wide: a blur lowers it, and the smooth background not
    assert best_blur(clean, cracked).sigma == 0.0
    clean, stained = (
        maps_of_noise(200, generator, smooth=0),
        maps_of_noise(200, generator, smooth=0),
    )
    # far below the noise from pixel to pixel, far above its mean over the stain
    stained[:, 8:24, 8:24] += 0.04
    choice = best_blur(clean, stained)
    assert choice.sigma >= 1.5 and choice.roc_auc[choice.sigma] > choice.roc_auc[0.0] + 0.2
    assert set(choice.roc_auc) == set(SIGMAS) and choice.images == (200, 200)


def test_every_image_drawn_into_gets_a_defect():
    images = torch.rand(40, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    defective = _with_defects(images, torch.Generator().manual_seed(2))
    assert defective.shape == images.shape
    assert ((defective - images).abs().flatten(1).amax(dim=1) > 0).all()


def test_the_same_seed_chooses_alike_and_too_few_images_are_refused():
    torch.manual_seed(0)
    model = AutoEncoder(latent_dim=4, side=32, channels=1).eval()
    images = torch.randint(
        0, 256, (24, 1, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    first, again = (choose_map_sigma(model, images, "error", seed=7) for _ in range(2))
    assert first == again and first.images == (12, 12)
    assert first.roc_auc[first.sigma] == max(first.roc_auc.values())
    with pytest.raises(
        AepipeError, match="anomaly.map_sigma auto .* there are 1; expected at least 2"
    ):
        choose_map_sigma(model, images[:1], "error", seed=7)
