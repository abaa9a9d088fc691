"""The judge: a small digit classifier, trained apart from the autoencoder, that says what MSE
cannot: which class an image the autoencoder made looks like, and how sure it is. Its penultimate
layer is the feature space of the Fréchet distance (the FID recipe with an MNIST judge instead of
Inception).

Two 3×3 conv blocks (with batch norm, each halving the image) → 128 features → one logit per class,
for images of any side (a multiple of 4) and channels; the checkpoint records them unless 1×28×28.
Trained with Adam on a one-cycle schedule: three epochs reach over 99 % on MNIST's test set.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aepipe.devices import as_floats, preferred_memory_format
from aepipe.model.checkpoints import load_weights, read_checkpoint, torch_save
from aepipe.params import MNIST_SIDE, JudgeParams

JUDGE_FORMAT = "aepipe.judge/1"
# Why a dataset has no judge, in the reports of every stage that would use it.
NO_CLASSES = (
    "the training images hold fewer than two classes (a folder without classes, or an inspection "
    "set's good images)"
)
FEATURES = 128
# Images per batch when judging: its 28×28×16 activations are large, so batches of 1024 spill out of
# the CPU caches (measured 0.65 s for 10,000 images; 0.41 s in batches of 256, the same verdicts to
# the bit).
JUDGING_BATCH_SIZE = 256  # for 1×28×28; as many pixel values per batch for larger images


class Judge(nn.Module):
    def __init__(self, classes: int, side: int = MNIST_SIDE, channels: int = 1):
        super().__init__()
        self.classes, self.side, self.channels = classes, side, channels
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),  # side / 2
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),  # side / 4
            nn.Flatten(),
            nn.Linear(32 * (side // 4) ** 2, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] → (N, classes) logits"""
        return self.head(self.features(images))


@dataclass
class Verdicts:
    """What the judge says of each of N images."""

    labels: np.ndarray  # (N,) the most likely class
    confidence: np.ndarray  # (N,) its probability
    features: np.ndarray  # (N, FEATURES) the penultimate layer, for Fréchet distances

    def accuracy(self, labels: np.ndarray) -> float:
        return float(np.mean(self.labels == labels))


@dataclass
class JudgeTraining:
    judge: Judge
    epoch_accuracies: list[float]  # on the validation images after each epoch
    seconds: float


def train_judge(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: np.ndarray,
    classes: int,
    params: JudgeParams,
    log=print,
) -> JudgeTraining:
    """Train a judge from scratch on (N, C, H, W) images (floats, or uint8 pixels) and their labels;
    seeded, so a CPU run repeats exactly."""
    device = train_images.device
    memory_format = preferred_memory_format(device)
    torch.manual_seed(params.seed)
    judge = Judge(classes, train_images.shape[-1], train_images.shape[1]).to(
        device, memory_format=memory_format
    )
    optimizer = torch.optim.Adam(judge.parameters(), lr=params.lr, fused=True)
    steps = -(-len(train_images) // params.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.lr, total_steps=params.epochs * steps
    )
    shuffle = torch.Generator().manual_seed(params.seed)
    started, accuracies = time.perf_counter(), []
    for epoch in range(params.epochs):
        judge.train()
        order = torch.randperm(len(train_images), generator=shuffle).to(device)
        for batch in order.split(params.batch_size):
            loss = nn.functional.cross_entropy(
                judge(as_floats(train_images[batch]).contiguous(memory_format=memory_format)),
                train_labels[batch],
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracies.append(judge_images(judge, val_images).accuracy(val_labels))
        log(f"judge epoch {epoch + 1}/{params.epochs}: validation accuracy {accuracies[-1]:.4f}")
    return JudgeTraining(judge.eval(), accuracies, time.perf_counter() - started)


@torch.no_grad()
def judge_images(judge: Judge, images: torch.Tensor) -> Verdicts:
    """The judge's class, confidence and features for (N, C, H, W) images (floats in [0, 1], or
    uint8 pixels), in batches."""
    judge.eval()
    labels, confidence, features = [], [], []
    for chunk in images.split(
        max(1, JUDGING_BATCH_SIZE * MNIST_SIDE**2 // math.prod(images.shape[1:]))
    ):
        chunk_features = judge.features(as_floats(chunk))
        best = judge.head(chunk_features).softmax(dim=1).max(dim=1)
        labels.append(best.indices)
        confidence.append(best.values)
        features.append(chunk_features)
    return Verdicts(*(torch.cat(parts).cpu().numpy() for parts in (labels, confidence, features)))


def save_judge(judge: Judge | None, path: str | Path) -> None:
    """None: the images have no classes, so there is nothing to judge with; the file says so."""
    state = (
        {name: tensor.detach().cpu() for name, tensor in judge.state_dict().items()}
        if judge
        else {}
    )
    shape = (
        {"side": judge.side, "channels": judge.channels}
        if judge and (judge.channels, judge.side) != (1, MNIST_SIDE)
        else {}
    )
    torch_save(
        {
            "format": JUDGE_FORMAT,
            "classes": judge.classes if judge else 0,
            **shape,
            "state_dict": state,
        },
        path,
    )


def load_judge(path: str | Path, device: str | torch.device = "cpu") -> Judge | None:
    """The saved judge, or None if it was saved for images without classes."""
    checkpoint = read_checkpoint(path, JUDGE_FORMAT, "judge", made_by="judge")
    if checkpoint["classes"] == 0:
        return None
    judge = Judge(
        checkpoint["classes"], checkpoint.get("side", MNIST_SIDE), checkpoint.get("channels", 1)
    )
    load_weights(judge, checkpoint["state_dict"], path, "judge")
    device = torch.device(device)
    return judge.to(device, memory_format=preferred_memory_format(device)).eval()
