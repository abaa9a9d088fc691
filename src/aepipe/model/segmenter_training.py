"""The defect segmenter (aepipe.model.segmenter) trained as DRAEM (Zavrtanik et al. 2021) trains its
own: on synthetic defects (aepipe.model.synthetic_defects) blended into the normal training images,
so it needs no defective image, with the focal loss (DRAEM's) to find them. The autoencoder is not
changed: the segmenter reads its reconstruction of the defective image.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from aepipe.devices import as_floats
from aepipe.model.augmentation import augment, augmenting
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.segmenter import Segmenter, levels
from aepipe.model.synthetic_defects import DefectMaker
from aepipe.params import TrainParams

# images of 64×64, the side it was chosen on; a batch of larger ones holds as many pixels:
BATCH_SIZE = 32
# its activations at 256×256 would take 4 GB more than the images
BATCH_PIXELS = BATCH_SIZE * 64 * 64
PEAK_LR = 2e-3  # of the one-cycle schedule
FOCAL_GAMMA = 2.0


def images_per_batch(side: int) -> int:
    """BATCH_SIZE images, or as many of `side` × `side` as hold BATCH_PIXELS (one at least)."""
    return max(1, min(BATCH_SIZE, BATCH_PIXELS // side**2))


def focal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with the well-classified pixels weighed down by (1 - p_true)^γ (Lin et
    al. 2017)."""
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (cross_entropy * (1 - torch.exp(-cross_entropy)) ** FOCAL_GAMMA).mean()


def train_segmenter(
    autoencoder: AutoEncoder,
    pixels: torch.Tensor,
    params: TrainParams,
    seed: int,
    log: Callable[[str], None] = print,
    textures: torch.Tensor | None = None,
) -> Segmenter:
    """A segmenter for `autoencoder` (left as it is), trained for train.segmenter_epochs on its (N,
    C, H, W) uint8 training images, converted a batch (at most BATCH_PIXELS) at a time, augmented as
    the autoencoder's were, given train.defects' synthetic defects (`textures`: (T, C, H, W) uint8
    images for its textures source). Returned in eval mode."""
    defects = DefectMaker(params.defects, None if textures is None else as_floats(textures).cpu())
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    segmenter = Segmenter(autoencoder.channels, levels(autoencoder.side)).to(pixels.device)
    optimizer = torch.optim.Adam(segmenter.parameters(), lr=PEAK_LR)
    batch_size = images_per_batch(autoencoder.side)
    steps = params.segmenter_epochs * math.ceil(len(pixels) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PEAK_LR, total_steps=steps)
    autoencoder.eval()
    for epoch in range(1, params.segmenter_epochs + 1):
        loss = _train_epoch(
            segmenter,
            autoencoder,
            pixels,
            (params, defects),
            (optimizer, schedule),
            batch_size,
            generator,
        )
        log(f"segmenter epoch {epoch}/{params.segmenter_epochs}: focal loss {loss:.5f}")
    return segmenter.eval()


def _train_epoch(
    segmenter: Segmenter,
    autoencoder: AutoEncoder,
    pixels: torch.Tensor,
    recipe: tuple,
    steppers: tuple,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over the images, each batch given synthetic defects; the mean focal loss."""
    (params, defects), (optimizer, schedule) = recipe, steppers
    segmenter.train()
    total = 0.0
    for batch in torch.randperm(len(pixels), generator=generator).split(batch_size):
        # Defects are drawn on the CPU: one seed, the same defects on any device.
        images = as_floats(pixels[batch.to(pixels.device)]).cpu()
        images = augment(images, params, generator) if augmenting(params) else images
        defective, masks = (tensor.to(pixels.device) for tensor in defects(images, generator))
        with torch.no_grad():
            reconstructions = autoencoder(defective)[0]
        loss = focal_loss(segmenter(defective, reconstructions), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(batch)
    return total / len(pixels)
