"""Scoring with the exported detector (models/detector.onnx, aepipe.deploy.export) and onnxruntime
alone: NumPy, Pillow and onnxruntime are all it imports, so a process that serves it needs no torch
(`pip install aepipe[serve]`)."""

import hashlib
import sys
from pathlib import Path

import numpy as np

from aepipe.data.images import shape_name
from aepipe.data.tiles import Tiling
from aepipe.errors import AepipeError

# The metadata "format" of every detector the export stage writes; /2 added the dead_frame output,
# /3 the latent output (what the drift watch reads) and, for whole images, the reference.
DETECTOR_FORMAT = "aepipe.detector/3"
READABLE_FORMATS = ("aepipe.detector/2", DETECTOR_FORMAT)
# images per call of the graph: memory stays small whatever the number of images
SCORING_BATCH = 256
INPUT = (
    "images"  # the graph's input; its outputs, in order: score, flagged, map, dead_frame, latent
)
# The metadata key of the graph's and its weights' sha256 (`graph_sha256`), written by the export
# and by aepipe calibrate: a flipped byte in a weight still loads, and scores otherwise.
CHECKSUM = "graph_sha256"
RECOVERY = (
    "restore it: `make verify-cache REMOVE=1`, then `dvc checkout --relink` of it, or `dvc pull` "
    "of it (or export it again: `dvc repro export`)"
)


def graph_sha256(model) -> str:
    """The sha256 of an ONNX ModelProto without its metadata: its graph, weights and opsets."""
    bare = type(model)()
    bare.CopyFrom(model)
    del bare.metadata_props[:]
    return hashlib.sha256(bare.SerializeToString(deterministic=True)).hexdigest()


def verify(path: Path, metadata: dict[str, str]) -> None:
    """Refuse a detector whose graph or weights are not what its export wrote, naming the recovery;
    one line of warning for a detector exported before the checksum, which cannot be checked."""
    import onnx

    if CHECKSUM not in metadata:
        print(
            f"warning: {path} carries no checksum (exported by an older aepipe), so it cannot be "
            "checked for corruption; export it again to have one (`dvc repro export`)",
            file=sys.stderr,
        )
    elif graph_sha256(onnx.load(path)) != metadata[CHECKSUM]:
        raise AepipeError(
            f"{path}: corrupt: its graph and weights are not what its export wrote (their sha256 "
            f"is not its {CHECKSUM}); {RECOVERY}"
        )


class OnnxDetector:
    """A detector file, ready to score (N, channels, side, side) float32 images in [0, 1]."""

    def __init__(self, path: str | Path, threads: int | None = None):
        """`threads`: onnxruntime's threads for one call (None: its own choice, one per core); one
        where calls run side by side, each on a core of its own (aepipe score)."""
        import onnxruntime  # noqa: PLC0415  (the one heavy import, only when a detector is used)

        self.path = Path(path)
        if not self.path.is_file():
            raise AepipeError(f"{path}: detector file not found; run `dvc repro export` first")
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        # onnxruntime raises its own exception types for a file that is no model
        except Exception as error:
            raise AepipeError(f"{path}: not an ONNX model ({str(error).splitlines()[0]})") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        written = self.metadata.get("format", "")
        if not written.startswith("aepipe.detector/"):
            raise AepipeError(
                f"{path}: an ONNX model, but not an aepipe detector (written by the export stage)"
            )
        if written not in READABLE_FORMATS:
            raise AepipeError(
                f"{path}: a detector of format {written}, where this aepipe reads "
                f"{' or '.join(READABLE_FORMATS)}; export it again (`dvc repro export`)"
            )
        verify(self.path, self.metadata)
        # What the drift watch reads (aepipe.anomaly.drift): the latent output, and the reference.
        self.latent_output = written == DETECTOR_FORMAT
        self.reference = self.metadata.get("reference")
        self.side, self.channels = int(self.metadata["side"]), int(self.metadata["channels"])
        self.threshold = float(self.metadata["threshold"])
        # A detector of tiles (data.tile): it scores tiles, and a scan is scored through them
        # (aepipe.deploy.scorers).
        tiled = "tile" in self.metadata
        self.tiling = (
            Tiling(int(self.metadata["tile"]), int(self.metadata["overlap"])) if tiled else None
        )

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(scores (N,) float64, flagged (N,) bool, maps (N, side, side) float32, dead frames (N,)
        bool) of (N, C, H, W) images."""
        return self.run(images)[:4]

    def run(self, images: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every output of the graph, in order (a /3 detector's: and the latent codes, (N, dim))."""
        if images.ndim != 4 or images.shape[1:] != (self.channels, self.side, self.side):
            given = (
                shape_name(images.shape[1], images.shape[2])
                if images.ndim == 4 and images.shape[2] == images.shape[3]
                else f"of shape {images.shape[1:]}"
            )
            raise AepipeError(
                f"the images are {given}, but the detector {self.path} takes "
                f"{shape_name(self.channels, self.side)}"
            )
        outputs = [
            self.session.run(None, {INPUT: np.ascontiguousarray(chunk, dtype=np.float32)})
            for chunk in np.split(images, range(SCORING_BATCH, len(images), SCORING_BATCH))
        ]
        return tuple(np.concatenate(parts) for parts in zip(*outputs, strict=True))
