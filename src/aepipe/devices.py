"""Where tensors live: the device train.device names, and images as tensors on it.

Kept apart from the training loop so that the evaluation stages, which need only these two, do not
depend on (and rerun after every edit of) training.py.
"""

import numpy as np
import torch

from aepipe.errors import AepipeError


def resolve_device(name: str) -> torch.device:
    """Map train.device (auto|cpu|cuda) to a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AepipeError("train.device = cuda, but no CUDA GPU is available here; use auto or cpu")
    return torch.device(name)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1] on `device`, as torchvision's ToTensor."""
    pixels = torch.from_numpy(np.array(images))  # a copy: arrays parsed from bytes are read-only
    return pixels.to(device).unsqueeze(1).float().div_(255)
