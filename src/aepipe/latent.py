"""The latent space: decode latents, and walk the straight line between two."""

import torch

from aepipe.devices import EVAL_BATCH_SIZE
from aepipe.model import AutoEncoder


@torch.no_grad()
def interpolate(model: AutoEncoder, start: torch.Tensor, end: torch.Tensor, steps: int) -> torch.Tensor:
    """Decode `steps` evenly spaced points on the line from latent `start` to latent `end`, in order.

    The first and last points are exactly the two latents, so the strip begins and ends with their
    reconstructions. Returns (steps, 1, 28, 28).
    """
    model.eval()
    fractions = torch.linspace(0, 1, steps, device=start.device).unsqueeze(1)
    return model.decode((1 - fractions) * start + fractions * end)


@torch.no_grad()
def decode(model: AutoEncoder, latents: torch.Tensor) -> torch.Tensor:
    """(N, latent_dim) → (N, 1, 28, 28), in batches."""
    model.eval()
    return torch.cat([model.decode(chunk) for chunk in latents.split(EVAL_BATCH_SIZE)])
