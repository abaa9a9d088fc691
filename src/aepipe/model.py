"""The seed notebook's convolutional autoencoder for 1×28×28 images, and its checkpoint format.

Encoder: 28×28 → stride-2 conv → 14×14 → stride-2 conv → 7×7 → 7×7 conv → 1×1×64 → linear → latent.
Decoder: the mirror image, ending in a sigmoid so reconstructions lie in [0, 1] like the inputs.
"""

from pathlib import Path

import torch
from torch import nn

from aepipe.checkpoints import load_weights, read_checkpoint, torch_save
from aepipe.devices import preferred_memory_format

CHECKPOINT_FORMAT = "aepipe.autoencoder/1"


class AutoEncoder(nn.Module):
    def __init__(self, latent_dim: int = 20):
        super().__init__()
        self.latent_dim = latent_dim
        self.noise_std = 0.0  # largest std of the input noise it was trained on (0: a plain autoencoder)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 7, stride=1, padding=0),
        )
        self.to_latent = nn.Linear(64, latent_dim)
        self.from_latent = nn.Linear(latent_dim, 64)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 7, stride=1, padding=0),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid(),
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) → (N, latent_dim)"""
        return self.to_latent(self.encoder(images).flatten(1))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) → (N, 1, 28, 28) in [0, 1]"""
        return self.decoder(self.from_latent(latents).view(-1, 64, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latents = self.encode(images)
        return self.decode(latents), latents


def save_model(model: AutoEncoder, path: str | Path) -> None:
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "latent_dim": model.latent_dim,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    }
    if model.noise_std:  # absent for a plain autoencoder, whose checkpoint stays as it always was
        checkpoint["noise_std"] = model.noise_std
    torch_save(checkpoint, path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> AutoEncoder:
    """Rebuild a saved model; anything but an aepipe checkpoint is refused with a clear error."""
    checkpoint = read_checkpoint(path, CHECKPOINT_FORMAT, "autoencoder", made_by="train")
    model = AutoEncoder(latent_dim=checkpoint["latent_dim"])
    load_weights(model, checkpoint["state_dict"], path, "autoencoder")
    model.noise_std = float(checkpoint.get("noise_std", 0.0))
    device = torch.device(device)
    return model.to(device, memory_format=preferred_memory_format(device)).eval()


def describe_training(model: AutoEncoder) -> str:
    """How the model was trained, in words for reports and figures."""
    if model.noise_std:
        return f"denoising autoencoder (trained on inputs with Gaussian noise of std up to {model.noise_std:g})"
    return "plain autoencoder (trained on clean images)"
