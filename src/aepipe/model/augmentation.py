"""Random changes to training images against what drifts on a line after commissioning: the part's
orientation (flips), its light (brightness, contrast, gamma) and its distance to the camera (scale).
Each draws from the generator it is given, so a seed repeats them; with every lever off the images
pass through untouched and no number is drawn."""

import math

import torch
import torch.nn.functional as F

from aepipe.params import TrainParams


def augmenting(params: TrainParams) -> bool:
    return params.flips or params.photometric > 0 or params.scale > 0


def augment(images: torch.Tensor, params: TrainParams, generator: torch.Generator) -> torch.Tensor:
    """(N, C, H, W) float images in [0, 1] with train.flips, train.photometric and train.scale applied."""
    if params.flips:
        images = random_flips(images, generator)
    if params.photometric > 0:
        images = photometric_jitter(images, params.photometric, generator)
    if params.scale > 0:
        images = scale_jitter(images, params.scale, generator)
    return images


def random_flips(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each (C, H, W) image mirrored left-right, and upside-down, each with probability 1/2."""
    flips = torch.rand(len(images), 2, generator=generator, device=images.device) < 0.5
    images = torch.where(flips[:, 0, None, None, None], images.flip(-1), images)
    return torch.where(flips[:, 1, None, None, None], images.flip(-2), images)


def photometric_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Each image's gamma (x^g, log g uniform in ±strength), contrast about its mean and brightness
    (factors uniform in 1 ± strength), then clipped to [0, 1]."""
    log_gamma, contrast, brightness = (strength * (2 * torch.rand(3, len(images), 1, 1, 1, generator=generator,
                                                                  device=images.device) - 1))
    images = images.clamp(min=0) ** log_gamma.exp()
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (((images - mean) * (1 + contrast) + mean) * (1 + brightness)).clamp(0, 1)


def scale_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Each image zoomed about its centre by a factor whose log is uniform in ±log(1 + strength),
    bilinear, the border mirrored where it zooms out."""
    log_zoom = math.log1p(strength) * (2 * torch.rand(len(images), generator=generator, device=images.device) - 1)
    theta = torch.zeros(len(images), 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = (-log_zoom).exp()  # the grid samples 1/zoom of the image
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
