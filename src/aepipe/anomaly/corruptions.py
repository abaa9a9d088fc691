"""Synthetic anomalies: normal images corrupted in ways a scanner might meet, seeded."""

import math

import torch
from torch.nn.functional import grid_sample

from aepipe.noise import add_gaussian_noise
from aepipe.params import CorruptionParams


def patch(images: torch.Tensor, side: int, seed: int) -> torch.Tensor:
    """A white side×side square at a random place in each image."""
    return images.masked_fill(patch_mask(images, side, seed)[:, None], 1.0)


def patch_mask(images: torch.Tensor, side: int, seed: int) -> torch.Tensor:
    """Where `patch` puts its squares, given the same seed: (N, H, W), True inside the square."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    height, width = images.shape[-2:]
    top = torch.randint(0, height - side + 1, (len(images), 1), generator=generator, device=images.device)
    left = torch.randint(0, width - side + 1, (len(images), 1), generator=generator, device=images.device)
    rows = torch.arange(height, device=images.device)
    columns = torch.arange(width, device=images.device)
    in_rows = (rows >= top) & (rows < top + side)  # (N, H)
    in_columns = (columns >= left) & (columns < left + side)  # (N, W)
    return in_rows[:, :, None] & in_columns[:, None, :]


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate counter-clockwise about the centre, bilinear, zeros outside: torchvision's
    `rotate(images, degrees, InterpolationMode.BILINEAR)` to the bit, without importing torchvision
    (a second and a half of every evaluate run). The grid is torchvision's: pixel centres relative to
    the image centre, mapped by the inverse rotation, then normalised to [-1, 1].
    """
    height, width = images.shape[-2:]
    angle = math.radians(-degrees)
    inverse = torch.tensor([[math.cos(angle), math.sin(angle), 0.0], [-math.sin(angle), math.cos(angle), 0.0]],
                           dtype=images.dtype, device=images.device)
    base = torch.empty(1, height, width, 3, dtype=images.dtype, device=images.device)
    base[..., 0].copy_(torch.linspace(-width * 0.5 + 0.5, width * 0.5 - 0.5, steps=width, device=images.device))
    base[..., 1].copy_(torch.linspace(-height * 0.5 + 0.5, height * 0.5 - 0.5, steps=height, device=images.device)[:, None])
    base[..., 2].fill_(1)
    scale = torch.tensor([0.5 * width, 0.5 * height], dtype=images.dtype, device=images.device)
    grid = base.view(1, height * width, 3).bmm(inverse.T[None] / scale).view(1, height, width, 2)
    return grid_sample(images, grid.expand(len(images), -1, -1, -1), mode="bilinear", padding_mode="zeros",
                       align_corners=False)


def corrupt(images: torch.Tensor, corruptions: CorruptionParams, seed: int) -> dict[str, torch.Tensor]:
    """Each enabled corruption of `images` (N, 1, H, W) in [0, 1], by name; every result stays in [0, 1]."""
    makers = {
        "gaussian_noise": lambda std: add_gaussian_noise(images, std, seed),
        "rotation": lambda degrees: rotate(images, degrees),
        "patch": lambda side: patch(images, side, seed),
        "invert": lambda _: 1 - images,
        "blank": lambda _: torch.zeros_like(images),
        "saturate": lambda _: torch.ones_like(images),
    }
    settings = corruptions.model_dump()
    return {name: make(settings[name]) for name, make in makers.items() if settings[name] not in (None, False)}
