"""The detector: the one torch module that turns images into anomaly scores, flags and maps.

Everything that scores runs it: the score stage (the validation images, the synthetic anomalies, an
inspection set's defects), `aepipe score` and `aepipe calibrate` on the torch path, the benchmarks,
and the export, whose ONNX graph is this module traced (aepipe.deploy.export; onnxruntime is
checked against it). The score's constants are fitted apart, on training images
(aepipe.anomaly.scores.fit_score); they are applied only here.
"""

import math
from typing import NamedTuple

import torch
from torch import nn

from aepipe.anomaly.maps import maps_of
from aepipe.anomaly.scores import CombinedStatistics, FittedScore, combined_terms, frame_contrast
from aepipe.anomaly.verdicts import Scores, flag_rule
from aepipe.devices import as_floats, eval_batches
from aepipe.gaussian_blur import smoothed
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.inference import reconstruction_errors


class Outputs(NamedTuple):
    score: torch.Tensor  # (N,) float64
    flagged: torch.Tensor  # (N,) bool: aepipe.anomaly.verdicts.flag_rule
    map: torch.Tensor  # (N, H, W) float32
    dead: torch.Tensor  # (N,) bool: a dead frame (FittedScore.dead_below)
    errors: torch.Tensor  # (N,) float32 reconstruction MSE
    latents: torch.Tensor  # (N, latent_dim)


class Detector(nn.Module):
    """(N, C, H, W) float32 images in [0, 1] → score, flagged, map, dead_frame (`Outputs`' first
    four).

    The map is the one the score reads, blurred (map_max; a defect's mask is its pixels above the
    threshold), or |image − reconstruction| for the other scores. Without a threshold (the score
    stage scores before the threshold is set) only dead frames are flagged."""

    def __init__(self, model: AutoEncoder, fitted: FittedScore, threshold: float = math.inf):
        super().__init__()
        self.model, self.method, self.maps, self.tiling = (
            model,
            fitted.method,
            fitted.maps,
            fitted.tiling,
        )
        self.register_buffer("threshold", torch.tensor(threshold, dtype=torch.float64))
        self.register_buffer("dead_below", torch.tensor(fitted.dead_below, dtype=torch.float32))
        if fitted.method == "combined":
            statistics = CombinedStatistics.of(fitted)
            self.register_buffer("means", statistics.means)
            self.register_buffer("precisions", statistics.precisions)
            self.spreads = statistics.spreads
        # eval: the segmenter's batch norm uses its running statistics, and stays so after the
        # export.
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """score, flagged, map, dead_frame and the latent codes: the exported graph's outputs."""
        outputs = self.outputs(images)
        return outputs.score, outputs.flagged, outputs.map, outputs.dead, outputs.latents

    def outputs(self, images: torch.Tensor) -> Outputs:
        reconstructions, latents = self.model(images)
        errors = reconstruction_errors(reconstructions, images)
        if self.maps:
            anomaly_map = smoothed(
                maps_of(self.model, reconstructions, images, self.maps.kind), self.maps.sigma
            )
        else:
            anomaly_map = maps_of(self.model, reconstructions, images, "error")
        if self.method == "reconstruction":
            score = errors.double()
        elif self.method == "map_max":
            score = anomaly_map.amax(dim=(1, 2)).double()
        else:
            statistics = CombinedStatistics(self.means, self.precisions, self.spreads)
            score = combined_terms(errors, latents, images.mean(dim=(1, 2, 3)), statistics).sum(
                dim=1
            )
        dead = frame_contrast(images) < self.dead_below
        return Outputs(
            score, flag_rule(score, dead, self.threshold), anomaly_map, dead, errors, latents
        )

    @torch.no_grad()
    def score(
        self,
        images: torch.Tensor,
        with_maps: bool = False,
        sizes: list[tuple[int, int]] | None = None,
    ) -> Scores:
        """(N, C, H, W) images (uint8 pixels or floats, on the module's device) scored batch by
        batch; of a detector of tiles (data.tile), given their scans' (height, width)s: the scans,
        stitched."""
        keep_maps = with_maps or sizes is not None
        parts = []
        for chunk in eval_batches(images):
            outputs = self.outputs(as_floats(chunk))
            parts.append(outputs if keep_maps else outputs._replace(map=None))
        scores, flagged, maps, dead, errors, latents = (
            None if column[0] is None else torch.cat(column).cpu().numpy()
            for column in zip(*parts, strict=True)
        )
        tiles = Scores(scores, flagged, dead, maps, errors, latents)
        if sizes is None:
            return tiles
        scans = self.scans(tiles, sizes)
        return scans if with_maps else scans.without_maps()

    def scans(self, tiles: Scores, sizes: list[tuple[int, int]]) -> Scores:
        """The scans of these (height, width)s from their tiles' Scores, with their maps, in order
        (a detector of tiles: aepipe.anomaly.verdicts.Scores.stitched)."""
        return Scores.stitched(self.tiling, tiles, sizes, self.threshold.item())
