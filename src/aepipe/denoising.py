"""Denoising: Gaussian noise on clean images, and how much of it the autoencoder takes away."""

import torch


def add_gaussian_noise(images: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """images + N(0, std²) per pixel, clipped to [0, 1] (pixel range); the same seed gives the same noise."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + std * noise).clamp_(0, 1)


def psnr(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image against its reference, for pixels in [0, 1]."""
    mse = (images - references).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(1 / mse)
