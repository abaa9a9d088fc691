"""Random changes to training images against what drifts on a line after commissioning: the part's
orientation (flips) and its light (brightness, contrast, gamma).
Each draws from the generator it is given, so a seed repeats them; with every lever off the images
pass through untouched and no number is drawn."""

import torch

from aepipe.params import TrainParams


def augmenting(params: TrainParams) -> bool:
    return params.flips or params.photometric > 0


def augment(images: torch.Tensor, params: TrainParams, generator: torch.Generator) -> torch.Tensor:
    """(N, C, H, W) float images in [0, 1] with train.flips and train.photometric applied."""
    if params.flips:
        images = random_flips(images, generator)
    if params.photometric > 0:
        images = photometric_jitter(images, params.photometric, generator)
    return images


def random_flips(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each (C, H, W) image mirrored left-right, and upside-down, each with probability 1/2."""
    flips = torch.rand(len(images), 2, generator=generator, device=images.device) < 0.5
    images = torch.where(flips[:, 0, None, None, None], images.flip(-1), images)
    return torch.where(flips[:, 1, None, None, None], images.flip(-2), images)


def photometric_jitter(
    images: torch.Tensor, strength: float, generator: torch.Generator
) -> torch.Tensor:
    """Each image's gamma (x^g, log g uniform in ±strength), contrast about its mean and brightness
    (factors uniform in 1 ± strength), then clipped to [0, 1]."""
    log_gamma, contrast, brightness = strength * (
        2 * torch.rand(3, len(images), 1, 1, 1, generator=generator, device=images.device) - 1
    )
    images = images.clamp(min=0) ** log_gamma.exp()
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (((images - mean) * (1 + contrast) + mean) * (1 + brightness)).clamp(0, 1)
