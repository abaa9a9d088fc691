"""Anomaly scores of single images: the statistics they are fitted with (on training images only),
and the combined score's terms. The detector (aepipe.anomaly.detector) applies them.

- reconstruction: the image's reconstruction error (MSE), the plain autoencoder's score.
- combined: three standardised terms, each a log-scale statistic of the image put in units of its
  spread over the training images, summed:
    1. reconstruction error: an image the model cannot rebuild. Floored at ERROR_FLOOR spreads below
       the mean: an image rebuilt better than almost any training image (a blank one) earns no more
       credit for it;
    2. latent distance: the squared Mahalanobis distance of its latent vector to the nearest of the
       Gaussians fitted to each normal class's training latents (one, in the one-class setting), an
       image the model maps where no training image lies;
    3. too little ink: how far its mean pixel falls more than INK_MARGIN spreads below the training
       images' (one-sided, zero for all but the emptiest normal images), an input too simple to be
       normal. A blank image reconstructs better than any digit and its latent lies among theirs;
       this term is what flags it.
The margin and the equal weights were chosen on one-class MNIST and Fashion-MNIST (docs/anomaly.md).
Whatever the score, a dead frame (`FittedScore.dead_below`: blank, saturated, one flat colour, what
a failed camera or a lost light sends) is flagged: its contrast, each channel's spread of pixel
values, lies far below the flattest normal training image's. A map may see nothing wrong in an empty
frame.
- map_max: the largest value of the image's anomaly map (|error|, 1 - SSIM or the segmenter's,
  `kind`) blurred by `map_sigma` pixels: a small defect on a part moves it, where the mean error
  over all pixels hardly moves (inspection sets).
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch

from aepipe.data.tiles import Tiling
from aepipe.devices import as_floats, eval_batches
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.inference import errors_and_latents

METHODS = ("reconstruction", "combined", "map_max")
# Keeps log(ink) finite for a blank image; far below the mean pixel of any MNIST digit (about 0.13).
INK_FLOOR = 1e-3
# spreads below the training mean, the most a good reconstruction lowers the score
ERROR_FLOOR = 3.0
INK_MARGIN = 2.0  # spreads below the training mean before the too-little-ink term counts
DISTANCE_FLOOR = 1e-12  # a latent exactly at the training mean: a finite log
# A frame is dead below this share of the flattest normal training image's contrast: a uniform frame
# has none, sensor noise on a black one a few thousandths; a digit or a texture tenths or
# hundredths.
DEAD_FRAME_SHARE = 0.25


@dataclass(frozen=True)
class ImageFeatures:
    """What a score is fitted with, from one pass of the model over N training images."""

    errors: np.ndarray  # (N,) reconstruction MSE
    latents: np.ndarray  # (N, latent_dim)
    ink: np.ndarray  # (N,) mean pixel of the input, in [0, 1]
    contrast: np.ndarray  # (N,) frame_contrast of the input

    def __getitem__(self, keep: np.ndarray) -> "ImageFeatures":
        return ImageFeatures(
            self.errors[keep], self.latents[keep], self.ink[keep], self.contrast[keep]
        )


@dataclass(frozen=True)
class MapSpec:
    """Which anomaly map a score reads, and how much it is blurred."""

    kind: str  # error | ssim | segmenter (aepipe.anomaly.maps.maps_of)
    sigma: float  # pixels


def image_features(model: AutoEncoder, images: torch.Tensor) -> ImageFeatures:
    """What a score is fitted with, of (N, C, H, W) images (floats, or uint8 pixels): one pass of
    the model."""
    errors, latents = errors_and_latents(model, images)
    ink = torch.cat([as_floats(chunk).mean(dim=(1, 2, 3)) for chunk in eval_batches(images)])
    contrast = torch.cat([frame_contrast(as_floats(chunk)) for chunk in eval_batches(images)])
    return ImageFeatures(
        errors.cpu().numpy(), latents.cpu().numpy(), ink.cpu().numpy(), contrast.cpu().numpy()
    )


def frame_contrast(images: torch.Tensor) -> torch.Tensor:
    """(N,) each image's contrast: the standard deviation of each channel's pixels, averaged over
    the channels (a frame of one flat colour has none). The pipeline's and the exported
    detector's."""
    return images.std(dim=(2, 3), correction=0).mean(dim=1)


@dataclass(frozen=True)
class Spread:
    """Mean and standard deviation of a statistic over the training images."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: np.ndarray) -> "Spread":
        return cls(float(values.mean()), float(values.std()) or 1.0)

    def standardise(self, values):  # NumPy arrays or tensors
        return (values - self.mean) / self.std


@dataclass(frozen=True)
class FittedScore:
    """A score and what it was fitted with; the detector (aepipe.anomaly.detector) gives one number
    per image, higher is more anomalous. The statistics of the combined terms are None for the other
    scores."""

    method: str
    latent_means: list[list[float]] | None = None  # per normal class
    # inverse covariances of the classes' latents
    latent_precisions: list[list[list[float]]] | None = None
    log_error: Spread | None = None
    log_distance: Spread | None = None
    log_ink: Spread | None = None
    maps: MapSpec | None = None  # for map_max
    min_contrast: float | None = None  # the flattest normal training image's frame_contrast
    # map_max of scans (data.tile): each scan's map stitched from its tiles'
    tiling: Tiling | None = None

    @property
    def dead_below(self) -> float:
        """The contrast under which a frame is dead, and flagged whatever its score."""
        return DEAD_FRAME_SHARE * self.min_contrast if self.min_contrast is not None else 0.0

    def to_dict(self) -> dict:
        return {
            key: value
            for key, value in asdict(self).items()
            if value is not None or key not in ("maps", "min_contrast", "tiling")
        }

    @classmethod
    def from_dict(cls, saved: dict) -> "FittedScore":
        spreads = {
            key: Spread(**saved[key]) if saved.get(key) else None
            for key in ("log_error", "log_distance", "log_ink")
        }
        if saved["method"] not in METHODS:
            raise ValueError(f"unknown score method {saved['method']!r}")
        maps = MapSpec(**saved["maps"]) if saved.get("maps") else None
        tiling = Tiling(**saved["tiling"]) if saved.get("tiling") else None
        return cls(
            saved["method"],
            saved.get("latent_means"),
            saved.get("latent_precisions"),
            **spreads,
            maps=maps,
            min_contrast=saved.get("min_contrast"),
            tiling=tiling,
        )


def fit_score(
    method: str,
    training: ImageFeatures,
    labels: np.ndarray,
    maps: MapSpec | None = None,
    tiling: Tiling | None = None,
) -> FittedScore:
    """The statistics `method` needs, from the normal training images' features and labels (never
    the validation images'); map_max needs none, only which map (`maps`) and, for scans, their
    `tiling`. Every score learns the flattest training image's contrast, below which a frame is
    dead."""
    min_contrast = float(training.contrast.min())
    if method == "reconstruction":
        return FittedScore(method, min_contrast=min_contrast)
    if method == "map_max":
        return FittedScore(method, maps=maps, min_contrast=min_contrast, tiling=tiling)
    if method != "combined":
        raise ValueError(f"unknown score method {method!r}")
    latents = training.latents.astype(np.float64)
    classes = [
        latents[labels == label] for label in np.unique(labels) if np.sum(labels == label) >= 2
    ] or [latents]
    # pinv: a latent dimension the model left unused would make a covariance singular.
    means = [group.mean(axis=0).tolist() for group in classes]
    precisions = [
        np.linalg.pinv(np.atleast_2d(np.cov(group, rowvar=False))).tolist() for group in classes
    ]
    distances = squared_mahalanobis(
        torch.from_numpy(latents),
        torch.tensor(means, dtype=torch.float64),
        torch.tensor(precisions, dtype=torch.float64),
    )
    return FittedScore(
        method,
        means,
        precisions,
        log_error=Spread.of(log_error(torch.from_numpy(training.errors)).numpy()),
        log_distance=Spread.of(log_distance(distances).numpy()),
        log_ink=Spread.of(log_ink(torch.from_numpy(training.ink)).numpy()),
        min_contrast=min_contrast,
    )


@dataclass(frozen=True)
class CombinedStatistics:
    """What the combined score reads, as tensors: the detector's buffers (constants of its exported
    graph)."""

    means: torch.Tensor  # (classes, latent) float64
    precisions: torch.Tensor  # (classes, latent, latent) float64
    spreads: tuple[Spread, Spread, Spread]  # of log_error, log_distance, log_ink

    @classmethod
    def of(cls, fitted: FittedScore) -> "CombinedStatistics":
        return cls(
            torch.tensor(fitted.latent_means, dtype=torch.float64),
            torch.tensor(fitted.latent_precisions, dtype=torch.float64),
            (fitted.log_error, fitted.log_distance, fitted.log_ink),
        )


def combined_terms(
    errors: torch.Tensor, latents: torch.Tensor, ink: torch.Tensor, statistics: CombinedStatistics
) -> torch.Tensor:
    """(N, 3) float64: the combined score's terms (the module's docstring) of N images'
    reconstruction errors, latents and mean pixels, as the detector computes them."""
    error_spread, distance_spread, ink_spread = statistics.spreads
    error = error_spread.standardise(log_error(errors)).clamp(min=-ERROR_FLOOR)
    distance = distance_spread.standardise(
        log_distance(squared_mahalanobis(latents, statistics.means, statistics.precisions))
    )
    too_little_ink = (-ink_spread.standardise(log_ink(ink)) - INK_MARGIN).clamp(min=0.0)
    return torch.stack([error, distance, too_little_ink], dim=1)


def squared_mahalanobis(
    latents: torch.Tensor, means: torch.Tensor, precisions: torch.Tensor
) -> torch.Tensor:
    """(N,) float64: each latent's squared Mahalanobis distance to the nearest class's Gaussian."""
    offsets = latents.double()[:, None, :] - means[None]  # (N, classes, latent)
    return torch.einsum("ncj,cjk,nck->nc", offsets, precisions, offsets).amin(dim=1)


def log_error(errors: torch.Tensor) -> torch.Tensor:
    return errors.double().log()


def log_distance(squared_distance: torch.Tensor) -> torch.Tensor:
    return squared_distance.clamp(min=DISTANCE_FLOOR).log()


def log_ink(ink: torch.Tensor) -> torch.Tensor:
    return ink.double().clamp(min=INK_FLOOR).log()
