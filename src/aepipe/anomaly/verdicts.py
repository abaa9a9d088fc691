"""What a detector's outputs say: the flag rule, the defect-mask rule, and a batch's `Scores`, of
whole images or of scans stitched from their tiles (data.tile). NumPy alone: the torch-free scorer
(aepipe.deploy.onnx_detector) reads it; the flag rule also runs on tensors, in the detector's
graph."""

from dataclasses import dataclass, replace

import numpy as np

from aepipe.data.tiles import Tiling


def flag_rule(scores, dead, threshold):
    """Flagged: a score above the threshold, or a dead frame (blank, saturated, one flat colour),
    whatever its score. NumPy arrays or tensors."""
    return (scores > threshold) | dead


def mask_rule(maps, threshold):
    """A defect's mask: the pixels of the map a map_max score reads that lie above the threshold, so
    an image is flagged exactly when its mask is not empty. A map, an array of maps, or a tensor."""
    return maps > threshold


@dataclass(frozen=True)
class Scores:
    """N images (or scans) scored: each one's score (float64), flag and dead-frame flag; where
    asked, the maps (a list of scans' maps, each at its scan's size), and from the torch detector
    each image's reconstruction error and latent vector."""

    scores: np.ndarray
    flagged: np.ndarray
    dead: np.ndarray
    maps: np.ndarray | list[np.ndarray] | None = None
    errors: np.ndarray | None = None
    latents: np.ndarray | None = None
    # Each latent's kernel summed over a drift watch's reference codes, where a watch asked for them
    # as the images were scored (aepipe.anomaly.drift.Watch.reference_sums).
    reference_sums: np.ndarray | None = None

    def masks(self, threshold: float) -> list[np.ndarray] | np.ndarray:
        return (
            [mask_rule(each, threshold) for each in self.maps]
            if isinstance(self.maps, list)
            else mask_rule(self.maps, threshold)
        )

    def without_maps(self) -> "Scores":
        return replace(self, maps=None)

    @classmethod
    def joined(cls, parts: list["Scores"]) -> "Scores":
        """Batches' scores one after the other, without their maps; errors and latents where every
        batch has them."""

        def joined_field(name: str) -> np.ndarray | None:
            values = [getattr(part, name) for part in parts]
            return None if any(value is None for value in values) else np.concatenate(values)

        scores, flagged, dead, errors, latents = map(
            joined_field, ("scores", "flagged", "dead", "errors", "latents")
        )
        return cls(scores, flagged, dead, errors=errors, latents=latents)

    @classmethod
    def stitched(
        cls, tiling: Tiling, tiles: "Scores", sizes: list[tuple[int, int]], threshold: float
    ) -> "Scores":
        """The scans of these (height, width)s, from their tiles' scores and maps in order: each
        scan's map stitched from its tiles' (averaged where they overlap), its score that map's
        peak; a scan is dead when every tile is, its error and latent code its tiles' mean (what
        the drift watch compares, scan by scan)."""
        maps = tiling.stitch_all(tiles.maps, sizes)
        owner, count = tiling.scan_of_each_tile(sizes), len(sizes)
        dead = np.bincount(owner, weights=~np.asarray(tiles.dead, bool), minlength=count) == 0
        scores = np.array([scan_map.max() for scan_map in maps], np.float64)
        errors, latents = (
            None if values is None else tiling.scan_means(values, sizes)
            for values in (tiles.errors, tiles.latents)
        )
        return cls(scores, flag_rule(scores, dead, threshold), dead, maps, errors, latents)
