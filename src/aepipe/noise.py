"""Gaussian noise on clean images: the denoise stage's inputs, and a denoising autoencoder's
training inputs."""

import torch


def add_gaussian_noise(images: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """images + N(0, std²) per pixel, clipped to [0, 1] (pixel range); the same seed gives the same
    noise."""
    generator = torch.Generator(device=images.device).manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + std * noise).clamp_(0, 1)


def noisy_inputs(images: torch.Tensor, max_std: float, generator: torch.Generator) -> torch.Tensor:
    """Each image plus Gaussian noise of its own std, drawn uniformly from [0, max_std], clipped to
    [0, 1]: a denoising autoencoder's training inputs, drawn from `generator` on the images'
    device."""
    stds = max_std * torch.rand(
        (len(images), 1, 1, 1), generator=generator, device=images.device, dtype=images.dtype
    )
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + stds * noise).clamp_(0, 1)
