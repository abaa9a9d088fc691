"""The defect segmenter (aepipe.model.segmenter) trained as DRAEM (Zavrtanik et al. 2021) trains its own:
on synthetic defects, made here from the normal training images alone, so it needs no defective
image and no outside data:

- where: a blob mask, smooth Gaussian noise above a threshold (DRAEM thresholds Perlin noise), a few
  percent of the image in blobs of 1 to 8 pixels' correlation length;
- what: another training image of the batch, turned by a multiple of 90°, its brightness and contrast
  changed (colour: its channels swapped), blended in with an opacity β from 0.1 to 1 (DRAEM pastes
  outside textures; a faint, smooth blend is what teaches it stains and shades).
Half the images of a batch get one; the segmenter is trained with the focal loss (DRAEM's) to find it.
The autoencoder is not changed: the segmenter reads its reconstruction of the defective image.
"""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from aepipe.model.augmentation import augment, augmenting
from aepipe.devices import as_floats
from aepipe.anomaly.maps import smoothed
from aepipe.model.autoencoder import AutoEncoder
from aepipe.params import TrainParams
from aepipe.model.segmenter import Segmenter, levels

BATCH_SIZE = 32  # images of 64×64, the side it was chosen on; a batch of larger ones holds as many pixels:
BATCH_PIXELS = BATCH_SIZE * 64 * 64  # its activations at 256×256 would take 4 GB more than the images
PEAK_LR = 2e-3  # of the one-cycle schedule
DEFECT_SHARE = 0.5  # of each batch's images
BLOB_SIGMAS = (1, 2, 4, 8)  # pixels: the noise's blur, one drawn per batch
FOCAL_GAMMA = 2.0


def blob_masks(count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 1, side, side) masks of random blobs: smoothed noise above 1 to 2 of its standard deviations."""
    sigma = BLOB_SIGMAS[int(torch.randint(len(BLOB_SIGMAS), (1,), generator=generator))]
    field = smoothed(torch.randn(count, side, side, generator=generator), sigma)
    field = (field - field.mean(dim=(1, 2), keepdim=True)) / field.std(dim=(1, 2), keepdim=True)
    return (field > 1 + torch.rand(count, 1, 1, generator=generator)).float()[:, None]


def synthetic_defects(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A share of (N, C, H, W) float images with a defect pasted in (see the module's docstring):
    the images, and the (N, H, W) masks of where the defects are (all 0 for the images left as they were)."""
    count, channels, side = images.shape[0], images.shape[1], images.shape[-1]
    source = torch.rot90(images[torch.randperm(count, generator=generator)],
                         int(torch.randint(4, (1,), generator=generator)), (2, 3))
    brightness, contrast = 0.5 + torch.rand(2, count, 1, 1, 1, generator=generator)
    mean = source.mean(dim=(1, 2, 3), keepdim=True)
    source = (((source - mean) * contrast + mean) * brightness).clamp(0, 1)
    if channels == 3:
        source = source[:, torch.randperm(3, generator=generator)]
    chosen = (torch.rand(count, 1, 1, 1, generator=generator) < DEFECT_SHARE).float()
    masks = blob_masks(count, side, generator) * chosen
    opacity = 0.1 + 0.9 * torch.rand(count, 1, 1, 1, generator=generator)
    return images + masks * opacity * (source - images), masks[:, 0]


def images_per_batch(side: int) -> int:
    """BATCH_SIZE images, or as many of `side` × `side` as hold BATCH_PIXELS (one at least)."""
    return max(1, min(BATCH_SIZE, BATCH_PIXELS // side**2))


def focal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with the well-classified pixels weighed down by (1 - p_true)^γ (Lin et al. 2017)."""
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (cross_entropy * (1 - torch.exp(-cross_entropy)) ** FOCAL_GAMMA).mean()


def train_segmenter(autoencoder: AutoEncoder, pixels: torch.Tensor, params: TrainParams, seed: int,
                    log: Callable[[str], None] = print) -> Segmenter:
    """A segmenter for `autoencoder` (left as it is), trained for train.segmenter_epochs on its (N, C, H, W)
    uint8 training images, converted a batch (at most BATCH_PIXELS) at a time, augmented as the
    autoencoder's were. Returned in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    segmenter = Segmenter(autoencoder.channels, levels(autoencoder.side)).to(pixels.device)
    optimizer = torch.optim.Adam(segmenter.parameters(), lr=PEAK_LR)
    batch_size = images_per_batch(autoencoder.side)
    steps = params.segmenter_epochs * math.ceil(len(pixels) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PEAK_LR, total_steps=steps)
    autoencoder.eval()
    for epoch in range(1, params.segmenter_epochs + 1):
        loss = _train_epoch(segmenter, autoencoder, pixels, params, (optimizer, schedule), batch_size, generator)
        log(f"segmenter epoch {epoch}/{params.segmenter_epochs}: focal loss {loss:.5f}")
    return segmenter.eval()


def _train_epoch(segmenter: Segmenter, autoencoder: AutoEncoder, pixels: torch.Tensor, params: TrainParams,
                 steppers: tuple, batch_size: int, generator: torch.Generator) -> float:
    """One pass over the images, each batch given synthetic defects; the mean focal loss."""
    optimizer, schedule = steppers
    segmenter.train()
    total = 0.0
    for batch in torch.randperm(len(pixels), generator=generator).split(batch_size):
        # Defects are drawn on the CPU: one seed, the same defects on any device.
        images = as_floats(pixels[batch.to(pixels.device)]).cpu()
        images = augment(images, params, generator) if augmenting(params) else images
        defective, masks = (tensor.to(pixels.device) for tensor in synthetic_defects(images, generator))
        with torch.no_grad():
            reconstructions = autoencoder(defective)[0]
        loss = focal_loss(segmenter(defective, reconstructions), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(batch)
    return total / len(pixels)
