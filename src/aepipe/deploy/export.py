"""The detector (aepipe.anomaly.detector) as one ONNX graph: images in, the anomaly score, the flag
and the anomaly map out, and parity: onnxruntime checked against the torch module it was traced
from.

The graph holds the autoencoder, the fitted score (its statistics as constants) and the per-image
threshold, so a scorer needs nothing beside the file: aepipe.deploy.onnx_detector runs it with
onnxruntime alone.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from aepipe.anomaly.detector import Detector
from aepipe.anomaly.scores import FittedScore
from aepipe.atomic import atomic_path
from aepipe.deploy.onnx_detector import (
    CHECKSUM,
    DETECTOR_FORMAT,
    INPUT,
    SCORING_BATCH,
    OnnxDetector,
    graph_sha256,
)
from aepipe.devices import as_floats

OPSET = 18
OUTPUTS = ("score", "flagged", "map", "dead_frame", "latent")


def export_detector(
    detector: Detector, channels: int, side: int, path: str | Path, metadata: dict[str, str]
) -> None:
    """Write the detector as ONNX (any batch size) with `metadata` in its metadata_props, all or
    nothing."""
    import onnx

    example = torch.rand(2, channels, side, side)
    batch = {0: "batch"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The tracer warns that the blur's radius, read from the image size, becomes a constant: it
        # is one (only the batch size varies); and that it cannot fold the reflecting pad's slices.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        torch.onnx.export(
            detector,
            (example,),
            tmp,
            input_names=[INPUT],
            output_names=list(OUTPUTS),
            dynamic_axes={INPUT: batch, **{name: batch for name in OUTPUTS}},
            opset_version=OPSET,
            dynamo=False,
        )
        graph = onnx.load(tmp)
        onnx.helper.set_model_props(
            graph, {"format": DETECTOR_FORMAT, **metadata, CHECKSUM: graph_sha256(graph)}
        )
        onnx.save(graph, tmp)


def detector_metadata(
    channels: int,
    side: int,
    fitted: FittedScore,
    threshold: float,
    dataset: str,
    params: dict,
    model_sha256: str,
) -> dict[str, str]:
    """What a scorer needs to know about the detector besides its graph: all strings (ONNX's
    rule)."""
    score = fitted.method + (
        f" on the {fitted.maps.kind} map blurred by {fitted.maps.sigma:g} px" if fitted.maps else ""
    )
    tiles = (
        {"tile": str(fitted.tiling.tile), "overlap": str(fitted.tiling.overlap)}
        if fitted.tiling
        else {}
    )
    return {
        "side": str(side),
        "channels": str(channels),
        "score": score,
        "threshold": repr(threshold),
        **tiles,
        "dataset": dataset,
        "params": json.dumps(params, sort_keys=True),
        "model_sha256": model_sha256,
    }


def relative_differences(got: np.ndarray, expected: np.ndarray, threshold: float) -> np.ndarray:
    """|got − expected| relative to the expected score or the threshold, whichever is larger: the
    scale at which a score decides (a combined score near 0 has no relative precision to speak
    of)."""
    return np.abs(got - expected) / np.maximum(np.abs(expected), abs(threshold))


@torch.no_grad()
def parity(onnx: OnnxDetector, detector: Detector, images: torch.Tensor) -> dict:
    """How far onnxruntime's outputs are from the torch detector's on the same (N, C, H, W) images
    (uint8 pixels or floats), batch by batch: the worst score difference (`relative_differences`),
    the flags that differ, and the worst map and latent code differences."""
    worst_score, flags_differ, worst_map, worst_latent = 0.0, 0, 0.0, 0.0
    for chunk in images.split(SCORING_BATCH):
        floats = as_floats(chunk).cpu()
        expected = detector.outputs(floats.to(detector.threshold.device))
        scores, flagged, maps, _, latents = onnx.run(floats.numpy())
        differences = relative_differences(scores, expected.score.cpu().numpy(), onnx.threshold)
        worst_score = max(worst_score, float(differences.max()))
        flags_differ += int(np.sum(flagged != expected.flagged.cpu().numpy()))
        worst_map = max(worst_map, float(np.abs(maps - expected.map.cpu().numpy()).max()))
        worst_latent = max(
            worst_latent, float(np.abs(latents - expected.latents.cpu().numpy()).max())
        )
    return {
        "images": len(images),
        "max_rel_diff": worst_score,
        "flags_differ": flags_differ,
        "max_map_diff": worst_map,
        "max_latent_diff": worst_latent,
    }
