"""The detector as one ONNX graph: images in, the anomaly score, the flag and the anomaly map out.

The graph holds the autoencoder, the fitted score (aepipe.anomaly.scores: its statistics as constants) and
the per-image threshold, so a scorer needs nothing beside the file: aepipe.deploy.serve runs it with
onnxruntime alone. It computes what the pipeline computes, step for step: the same float32 model
pass, the combined score's terms (aepipe.anomaly.scores.combined_terms, the pipeline's own), the same map and blur.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aepipe.atomic import atomic_path
from aepipe.anomaly.detection import decisive_scores
from aepipe.devices import as_floats, eval_batches, to_numpy_images
from aepipe.anomaly.maps import maps_of
from aepipe.gaussian_blur import smoothed
from aepipe.model.autoencoder import AutoEncoder
from aepipe.anomaly.scores import CombinedStatistics, FittedScore, combined_terms, frame_contrast, score_maps
from aepipe.anomaly.scans import score_images
from aepipe.data.dataset import TiledScans
from aepipe.deploy.scorers import detector_scorer
from aepipe.deploy.serve import DETECTOR_FORMAT, INPUT, OnnxDetector

OPSET = 18
OUTPUTS = ("score", "flagged", "map", "dead_frame")


class Detector(nn.Module):
    """(N, C, H, W) float32 images in [0, 1] → score (N,) float64, flagged (N,) bool (score > threshold,
    or a dead frame), map (N, H, W) float32: the map the score reads, blurred (map_max), or
    |image − reconstruction|, and dead_frame (N,) bool (FittedScore.dead_frames)."""

    def __init__(self, model: AutoEncoder, fitted: FittedScore, threshold: float):
        super().__init__()
        self.model, self.method, self.maps = model, fitted.method, fitted.maps
        self.register_buffer("threshold", torch.tensor(threshold, dtype=torch.float64))
        self.register_buffer("dead_below", torch.tensor(fitted.dead_below, dtype=torch.float32))
        self.statistics = CombinedStatistics.of(fitted) if fitted.method == "combined" else None
        # The export puts every module back in the mode it found the detector in: eval, or the
        # segmenter's batch norm would use each batch's statistics afterwards.
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        reconstructions, latents = self.model(images)
        errors = (reconstructions - images).square().mean(dim=(1, 2, 3))
        if self.maps:
            error_map = smoothed(maps_of(self.model, reconstructions, images, self.maps.kind), self.maps.sigma)
        else:
            error_map = maps_of(self.model, reconstructions, images, "error")
        if self.method == "reconstruction":
            score = errors.double()
        elif self.method == "map_max":
            score = error_map.amax(dim=(1, 2)).double()
        else:
            score = combined_terms(errors, latents, images.mean(dim=(1, 2, 3)), self.statistics).sum(dim=1)
        dead = frame_contrast(images) < self.dead_below
        return score, (score > self.threshold) | dead, error_map, dead


def export_detector(detector: Detector, channels: int, side: int, path: str | Path, metadata: dict[str, str]) -> None:
    """Write the detector as ONNX (any batch size) with `metadata` in its metadata_props, all or nothing."""
    import onnx

    example = torch.rand(2, channels, side, side)
    batch = {0: "batch"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The tracer warns that the blur's radius, read from the image size, becomes a constant: it is
        # one (only the batch size varies); and that it cannot fold the reflecting pad's slices.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        torch.onnx.export(detector, (example,), tmp, input_names=[INPUT], output_names=list(OUTPUTS),
                          dynamic_axes={INPUT: batch, **{name: batch for name in OUTPUTS}}, opset_version=OPSET,
                          dynamo=False)
        graph = onnx.load(tmp)
        onnx.helper.set_model_props(graph, {"format": DETECTOR_FORMAT, **metadata})
        onnx.save(graph, tmp)


def detector_metadata(channels: int, side: int, fitted: FittedScore, threshold: float, dataset: str, params: dict,
                      model_sha256: str) -> dict[str, str]:
    """What a scorer needs to know about the detector besides its graph: all strings (ONNX's rule)."""
    score = fitted.method + (f" on the {fitted.maps.kind} map blurred by {fitted.maps.sigma:g} px" if fitted.maps else "")
    tiles = {"tile": str(fitted.tiling.tile), "overlap": str(fitted.tiling.overlap)} if fitted.tiling else {}
    return {"side": str(side), "channels": str(channels), "score": score, "threshold": repr(threshold), **tiles,
            "dataset": dataset, "params": json.dumps(params, sort_keys=True), "model_sha256": model_sha256}


def relative_differences(got: np.ndarray, expected: np.ndarray, threshold: float) -> np.ndarray:
    """|got − expected| relative to the expected score or the threshold, whichever is larger: the scale
    at which a score decides (a combined score near 0 has no relative precision to speak of)."""
    return np.abs(got - expected) / np.maximum(np.abs(expected), abs(threshold))


@torch.no_grad()
def parity(detector: OnnxDetector, model: AutoEncoder, fitted: FittedScore, images: torch.Tensor,
           scores: np.ndarray) -> dict:
    """How far the exported detector's outputs are from the pipeline's on the same (N, C, H, W) images
    (uint8 pixels or floats): the scores the pipeline wrote (`scores`), its flags (score > threshold,
    or a dead frame), and its maps (computed here, as `aepipe score --maps` draws them), batch by
    batch; scores by `relative_differences`."""
    worst_score, flags_differ, worst_map, start = 0.0, 0, 0.0, 0
    for chunk in eval_batches(images):
        floats = as_floats(chunk)
        expected = scores[start : start + len(chunk)]
        dead = frame_contrast(floats).cpu().numpy() < fitted.dead_below
        got_scores, got_flags, got_maps, _ = detector(floats.cpu().numpy())
        worst_score = max(worst_score, float(np.max(relative_differences(got_scores, expected, detector.threshold))))
        flags_differ += int(np.sum(got_flags != (decisive_scores(expected, dead) > detector.threshold)))
        worst_map = max(worst_map, float(np.max(np.abs(got_maps - score_maps(model, floats, fitted).cpu().numpy()))))
        start += len(chunk)
    return {"images": len(images), "max_rel_diff": worst_score, "flags_differ": flags_differ, "max_map_diff": worst_map}


@torch.no_grad()
def torch_floor(detector: Detector, images: torch.Tensor, scores: np.ndarray) -> float:
    """The pipeline's own floor of agreement: its computation, in torch, on one image at a time
    against its scores of the same images computed in batches (float32 convolutions round
    differently by batch size and engine; a score that amplifies its latents amplifies that)."""
    one_by_one = np.array([detector(as_floats(image[None]))[0].item() for image in images])
    return float(np.max(relative_differences(one_by_one, scores, detector.threshold.item())))


@torch.no_grad()
def scan_parity(path: Path, model: AutoEncoder, fitted: FittedScore, scans: TiledScans, tiles: torch.Tensor,
                scores: np.ndarray, dead: np.ndarray) -> dict:
    """`parity` of a detector of tiles on the validation scans: each scan (rebuilt from its tiles)
    scored as `aepipe score --onnx` scores it, against the scores and dead frames the pipeline wrote
    and its stitched maps."""
    scorer = detector_scorer(path)
    scored = scorer.score_images(scans.maps("val", to_numpy_images(as_floats(tiles))), True)
    expected = score_images(model, tiles, fitted, scans.sizes["val"])
    return {"images": len(scores), "max_rel_diff": float(np.max(relative_differences(scored.scores, scores, scorer.threshold))),
            "flags_differ": int(np.sum(scored.flagged != (decisive_scores(scores, dead) > scorer.threshold))),
            "max_map_diff": max(float(np.max(np.abs(got - want))) for got, want in zip(scored.maps, expected.maps))}
