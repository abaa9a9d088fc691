"""Synthetic anomalies: normal images corrupted in ways a scanner might meet, seeded."""

import torch

from aepipe.noise import add_gaussian_noise
from aepipe.params import CorruptionParams


def patch(images: torch.Tensor, side: int, seed: int) -> torch.Tensor:
    """A white side×side square at a random place in each image."""
    return images.masked_fill(patch_mask(images, side, seed)[:, None], 1.0)


def patch_mask(images: torch.Tensor, side: int, seed: int) -> torch.Tensor:
    """Where `patch` puts its squares, given the same seed: (N, H, W), True inside the square."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    height, width = images.shape[-2:]
    top = torch.randint(
        0, height - side + 1, (len(images), 1), generator=generator, device=images.device
    )
    left = torch.randint(
        0, width - side + 1, (len(images), 1), generator=generator, device=images.device
    )
    rows = torch.arange(height, device=images.device)
    columns = torch.arange(width, device=images.device)
    in_rows = (rows >= top) & (rows < top + side)  # (N, H)
    in_columns = (columns >= left) & (columns < left + side)  # (N, W)
    return in_rows[:, :, None] & in_columns[:, None, :]


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate counter-clockwise about the centre, bilinear, zeros outside (torchvision's; imported
    here, where a rotation is asked for: a second of the stages that score corruptions,
    measured)."""
    from torchvision.transforms.functional import InterpolationMode
    from torchvision.transforms.functional import rotate as rotated

    return rotated(images, degrees, interpolation=InterpolationMode.BILINEAR)


def corrupt(
    images: torch.Tensor, corruptions: CorruptionParams, seed: int
) -> dict[str, torch.Tensor]:
    """Each enabled corruption of `images` (N, C, H, W) in [0, 1], by name; every result stays in
    [0, 1]."""
    makers = {
        "gaussian_noise": lambda std: add_gaussian_noise(images, std, seed),
        "rotation": lambda degrees: rotate(images, degrees),
        "patch": lambda side: patch(images, side, seed),
        "invert": lambda _: 1 - images,
        "blank": lambda _: torch.zeros_like(images),
        "saturate": lambda _: torch.ones_like(images),
    }
    settings = corruptions.model_dump()
    return {
        name: make(settings[name])
        for name, make in makers.items()
        if settings[name] not in (None, False)
    }
