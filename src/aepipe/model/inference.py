"""Passes of the model over images in batches: reconstructions, their errors and latents (per image,
per batch, over a set), and latents decoded back into images (the latent space's walks and
samples)."""

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from aepipe.devices import EVAL_BATCH_SIZE, as_floats, eval_batches
from aepipe.model.autoencoder import AutoEncoder


@contextmanager
def evaluating(model: AutoEncoder) -> Iterator[None]:
    """The model in eval mode, without gradients, for the block; its mode as it was after it (a
    training run measures its model between epochs)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def reconstruct(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """The model's reconstruction of (N, C, H, W) images (floats, or uint8 pixels), in batches."""
    with evaluating(model):
        return torch.cat([model(as_floats(chunk))[0] for chunk in eval_batches(images)])


def errors_and_latents(
    model: AutoEncoder, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's reconstruction error (MSE) and latent vector, from one pass of the model:
    (N, C, H, W) → (N,), (N, latent_dim). Batch by batch, so only one batch of reconstructions (and
    of float images, given uint8 pixels) is held."""
    errors, latents = [], []
    with evaluating(model):
        for pixels in eval_batches(images):
            chunk = as_floats(pixels)
            reconstruction, latent = model(chunk)
            errors.append(reconstruction_errors(reconstruction, chunk))
            latents.append(latent)
    return torch.cat(errors), torch.cat(latents)


def reconstruction_errors(reconstructions: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """(N,) each image's mean squared reconstruction error."""
    return (reconstructions - images).square().mean(dim=(1, 2, 3))


def per_image_errors(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error between each image and its reconstruction: (N, C, H, W) → (N,)."""
    return errors_and_latents(model, images)[0]


def mean_squared_error(model: AutoEncoder, images: torch.Tensor) -> float:
    """MSE over all pixels of all images (every image has the same size, so the mean of means)."""
    return per_image_errors(model, images).mean().item()


def batch_means(per_image: np.ndarray, batch_size: int) -> np.ndarray:
    """Mean of consecutive batches of `batch_size` (the last may be smaller), in dataset order.

    This is the seed's per-batch loss: nn.MSELoss over a batch equals the mean of its images' MSEs.
    """
    starts = np.arange(0, len(per_image), batch_size)
    return np.add.reduceat(per_image, starts) / np.diff(np.append(starts, len(per_image)))


def shuffled_batch_means(per_image: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """The seed's per-batch loss: `batch_means` in a seeded random order, as its shuffled DataLoader
    (MNIST's files are not shuffled: the test set's halves come from different writers)."""
    return batch_means(
        per_image[np.random.default_rng(seed).permutation(len(per_image))], batch_size
    )


@torch.no_grad()
def interpolate(
    model: AutoEncoder, start: torch.Tensor, end: torch.Tensor, steps: int
) -> torch.Tensor:
    """Decode `steps` evenly spaced points on the line from latent `start` to latent `end`, in
    order.

    The first and last points are exactly the two latents, so the strip begins and ends with their
    reconstructions. Returns (steps, C, H, W).
    """
    model.eval()
    fractions = torch.linspace(0, 1, steps, device=start.device).unsqueeze(1)
    return model.decode((1 - fractions) * start + fractions * end)


@torch.no_grad()
def decode(model: AutoEncoder, latents: torch.Tensor) -> torch.Tensor:
    """(N, latent_dim) → (N, C, H, W), in batches."""
    model.eval()
    return torch.cat([model.decode(chunk) for chunk in latents.split(EVAL_BATCH_SIZE)])
