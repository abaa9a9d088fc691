"""Synthetic anomalies: normal images corrupted in ways a scanner might meet, seeded."""

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.functional import rotate

from aepipe.denoising import add_gaussian_noise
from aepipe.params import CorruptionParams


def patch(images: torch.Tensor, side: int, seed: int) -> torch.Tensor:
    """A white side×side square at a random place in each image."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    height, width = images.shape[-2:]
    top = torch.randint(0, height - side + 1, (len(images), 1), generator=generator, device=images.device)
    left = torch.randint(0, width - side + 1, (len(images), 1), generator=generator, device=images.device)
    rows = torch.arange(height, device=images.device)
    columns = torch.arange(width, device=images.device)
    in_rows = (rows >= top) & (rows < top + side)  # (N, H)
    in_columns = (columns >= left) & (columns < left + side)  # (N, W)
    square = (in_rows[:, :, None] & in_columns[:, None, :])[:, None]  # (N, 1, H, W)
    return images.masked_fill(square, 1.0)


def corrupt(images: torch.Tensor, corruptions: CorruptionParams, seed: int) -> dict[str, torch.Tensor]:
    """Each enabled corruption of `images` (N, 1, H, W) in [0, 1], by name; every result stays in [0, 1]."""
    makers = {
        "gaussian_noise": lambda std: add_gaussian_noise(images, std, seed),
        "rotation": lambda degrees: rotate(images, degrees, interpolation=InterpolationMode.BILINEAR),
        "patch": lambda side: patch(images, side, seed),
        "invert": lambda _: 1 - images,
        "blank": lambda _: torch.zeros_like(images),
        "saturate": lambda _: torch.ones_like(images),
    }
    settings = corruptions.model_dump()
    return {name: make(settings[name]) for name, make in makers.items() if settings[name] not in (None, False)}
