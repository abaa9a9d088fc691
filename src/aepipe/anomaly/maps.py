"""Anomaly maps: where, pixel by pixel, an image differs from what the model makes of it (the
reconstruction error, 1 - local SSIM, or the defect segmenter's probability)."""

import torch

from aepipe.devices import as_floats
from aepipe.errors import AepipeError
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.inference import reconstruct
from aepipe.similarity import ssim_map


def error_maps(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """The anomaly map of each image: |image - reconstruction| per pixel, averaged over the colour
    channels: (N, C, H, W) → (N, H, W) in [0, 1]."""
    return anomaly_maps(model, images, "error")


def anomaly_maps(model: AutoEncoder, images: torch.Tensor, kind: str) -> torch.Tensor:
    """Each image's anomaly map, (N, C, H, W) → (N, H, W): see maps_of."""
    return maps_of(model, reconstruct(model, images), as_floats(images), kind)


@torch.no_grad()
def maps_of(
    model: AutoEncoder, reconstructions: torch.Tensor, images: torch.Tensor, kind: str
) -> torch.Tensor:
    """The anomaly maps of float images from the model's reconstructions of them, (N, H, W),
    averaged over the colour channels: "error", |image - reconstruction| (in [0, 1]); "ssim", 1 -
    the local structural similarity of the two (Bergmann et al. 2018: a change of texture or
    contrast shows even where the mean is kept); "segmenter", the probability of a defect that the
    model's segmenter draws from both (aepipe.model.segmenter)."""
    if kind == "error":
        return (reconstructions - images).abs().mean(dim=1)
    if kind == "ssim":
        return (1 - ssim_map(reconstructions, images, same_size=True)).mean(dim=1)
    if kind == "segmenter":
        if model.segmenter is None:
            raise AepipeError(
                "anomaly.map = segmenter, but the model was trained without a segmenter "
                "(train.segmenter): expected a model trained with one, or anomaly.map error or "
                "ssim"
            )
        return model.segmenter.probabilities(images, reconstructions)
    raise ValueError(f"unknown anomaly map {kind!r}")
