"""The convolutional autoencoder: the seed notebook's for 1×28×28 images, and the same design for
any side and channels. Its checkpoint format records both.

Encoder: stride-2 3×3 convolutions halve the image while it is even and larger than GRID (16, 32,
64… channels), a convolution as large as the grid left → 1×1, a linear layer → latent.
Decoder: the mirror image, ending in a sigmoid so reconstructions lie in [0, 1] like the inputs.
For 1×28×28 that is the seed's model, layer for layer: 28 → 14 → 7 → 1×1×64 → latent.
"""

from pathlib import Path

import torch
from torch import nn

from aepipe.data.images import shape_name
from aepipe.devices import preferred_memory_format
from aepipe.errors import AepipeError
from aepipe.model.checkpoints import load_weights, read_checkpoint, torch_save
from aepipe.model.segmenter import Segmenter
from aepipe.params import MNIST_SIDE

CHECKPOINT_FORMAT = "aepipe.autoencoder/1"
# (channels, side) of the seed's images: a checkpoint without a shape holds these
SEED_SHAPE = (1, MNIST_SIDE)
GRID = 8  # the encoder halves the image until it is at most this many pixels across (or odd)
FIRST_WIDTH = 16  # channels after the first convolution; doubled by each one after it


def halvings(side: int) -> int:
    """How many stride-2 convolutions the encoder has for images `side` pixels across."""
    count = 0
    while side % 2 == 0 and side > GRID:
        side, count = side // 2, count + 1
    return count


class AutoEncoder(nn.Module):
    def __init__(
        self, latent_dim: int = 20, side: int = SEED_SHAPE[1], channels: int = SEED_SHAPE[0]
    ):
        super().__init__()
        self.latent_dim, self.side, self.channels = latent_dim, side, channels
        # largest std of the input noise it was trained on (0: a plain autoencoder)
        self.noise_std = 0.0
        self.segmenter: Segmenter | None = None  # trained on this model's reconstructions, if any
        steps = halvings(side)
        grid, widths = (
            side >> steps,
            [channels] + [FIRST_WIDTH << step for step in range(steps + 1)],
        )
        self.bottleneck = widths[-1]
        down = []
        for narrow, wide in zip(widths[:-2], widths[1:-1], strict=True):
            down += [nn.Conv2d(narrow, wide, 3, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(
            *down, nn.Conv2d(widths[-2], widths[-1], grid, stride=1, padding=0)
        )
        self.to_latent = nn.Linear(self.bottleneck, latent_dim)
        self.from_latent = nn.Linear(latent_dim, self.bottleneck)
        up = [nn.ConvTranspose2d(widths[-1], widths[-2], grid, stride=1, padding=0), nn.ReLU()]
        for wide, narrow in zip(widths[-2:1:-1], widths[-3:0:-1], strict=True):
            up += [
                nn.ConvTranspose2d(wide, narrow, 3, stride=2, padding=1, output_padding=1),
                nn.ReLU(),
            ]
        self.decoder = nn.Sequential(
            *up,
            nn.ConvTranspose2d(widths[1], channels, 3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid(),
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, channels, side, side) → (N, latent_dim)"""
        return self.to_latent(self.encoder(images).flatten(1))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) → (N, channels, side, side) in [0, 1]"""
        return self.decoder(self.from_latent(latents).view(-1, self.bottleneck, 1, 1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latents = self.encode(images)
        return self.decode(latents), latents


def save_model(model: AutoEncoder, path: str | Path) -> None:
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "latent_dim": model.latent_dim,
        **(
            {}
            if (model.channels, model.side) == SEED_SHAPE
            else {"side": model.side, "channels": model.channels}
        ),
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    }
    if model.noise_std:  # absent for a plain autoencoder, whose checkpoint stays as it always was
        checkpoint["noise_std"] = model.noise_std
    if model.segmenter is not None:  # its weights are in the state dict, under "segmenter."
        checkpoint["segmenter_depth"] = model.segmenter.depth
    torch_save(checkpoint, path)


def load_model(
    path: str | Path, device: str | torch.device = "cpu", images: tuple[int, int] | None = None
) -> AutoEncoder:
    """Rebuild a saved model; anything but an aepipe checkpoint is refused with a clear error, and
    so is a model of another shape than `images` (channels, side), the images it is to be used
    on."""
    checkpoint = read_checkpoint(path, CHECKPOINT_FORMAT, "autoencoder", made_by="train")
    # absent from the seed's shape's checkpoints, which stay as they always were
    channels, side = SEED_SHAPE
    model = AutoEncoder(
        checkpoint["latent_dim"], checkpoint.get("side", side), checkpoint.get("channels", channels)
    )
    if "segmenter_depth" in checkpoint:
        model.segmenter = Segmenter(model.channels, checkpoint["segmenter_depth"])
    load_weights(model, checkpoint["state_dict"], path, "autoencoder")
    model.noise_std = float(checkpoint.get("noise_std", 0.0))
    if images:
        check_shape(model, *images, f"{path}: the images (data.channels, data.side)")
    device = torch.device(device)
    return model.to(device, memory_format=preferred_memory_format(device)).eval()


def describe_training(model: AutoEncoder) -> str:
    """How the model was trained, in words for reports and figures."""
    if model.noise_std:
        return (
            "denoising autoencoder (trained on inputs with Gaussian noise of std up to "
            f"{model.noise_std:g})"
        )
    return "plain autoencoder (trained on clean images)"


def check_shape(model: AutoEncoder, channels: int, side: int, what: str) -> None:
    """Refuse images of another shape than the model's, naming both."""
    if (channels, side) != (model.channels, model.side):
        raise AepipeError(
            f"{what} are {shape_name(channels, side)}, but the model takes "
            f"{shape_name(model.channels, model.side)}"
        )
