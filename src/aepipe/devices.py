"""Where tensors live: the device train.device names, images as tensors on it, and their layout
there.

Kept apart from the models and the training loop so that the stages, which all need these, do not
depend on (and rerun after every edit of) model/training.py, or the judge on the autoencoder's
model/autoencoder.py.
"""

import math

import numpy as np
import torch

from aepipe.errors import AepipeError
from aepipe.params import MNIST_SIDE

# MNIST images per batch of a pass without gradients: large, and memory stays small
EVAL_BATCH_SIZE = 1024
# as many pixel values per batch for images of any shape
EVAL_BATCH_VALUES = EVAL_BATCH_SIZE * MNIST_SIDE**2


def resolve_device(name: str) -> torch.device:
    """Map train.device (auto|cpu|cuda) to a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AepipeError("train.device = cuda, but no CUDA GPU is available here; use auto or cpu")
    return torch.device(name)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) → float32 (N, C, H, W) in [0, 1] on `device`, as
    torchvision's ToTensor."""
    return as_floats(to_pixels(images, device))


def to_pixels(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) → uint8 (N, C, H, W) on `device`: a quarter of the memory of
    floats, for image sets converted batch by batch (`as_floats`)."""
    pixels = torch.from_numpy(images if images.flags.writeable else np.array(images))
    return (pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)).to(device)


def as_floats(images: torch.Tensor) -> torch.Tensor:
    """A batch of uint8 pixels as float32 in [0, 1]; float images are returned as they are."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images


def to_numpy_images(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) → numpy (N, H, W) for greyscale, (N, H, W, C) for colour: the layout of the
    dataset on disk and of the figures."""
    images = images.detach().cpu()
    return (images[:, 0] if images.shape[1] == 1 else images.permute(0, 2, 3, 1)).numpy()


def eval_batches(images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(N, C, H, W) images in batches of EVAL_BATCH_VALUES pixel values (1,024 MNIST digits, 16
    colour images of 128×128): a pass's activations take the same memory whatever the image size."""
    return images.split(max(1, EVAL_BATCH_VALUES // math.prod(images.shape[1:])))


def preferred_memory_format(device: torch.device) -> torch.memory_format:
    """Channels-last convolutions measured 20-30 % faster on a 2-core CPU (not measured on a GPU
    yet)."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
