"""Images scored one number each: whole images by the fitted score, or scans (data.tile) through
their tiles: each tile's map as the score reads it (blurred), stitched into the scan's map
(aepipe.data.tiles), whose peak is the scan's score. The exported detector scores a tile as the
pipeline does, and `aepipe score` stitches its maps with the same NumPy code."""

import torch

from aepipe.anomaly.scores import FittedScore, ImageFeatures, image_features, score_maps
from aepipe.data.tiles import ScanScores
from aepipe.devices import as_floats, eval_batches
from aepipe.model.autoencoder import AutoEncoder


def score_images(model: AutoEncoder, images: torch.Tensor, fitted: FittedScore, sizes: list[tuple[int, int]] | None = None,
                 features: ImageFeatures | None = None) -> ScanScores:
    """Each image's score, dead-frame flag and error: of (N, C, H, W) whole images (no maps kept), or,
    with `fitted.tiling`, of the scans of these (height, width)s from their tiles, in order. `features`:
    the images' own (image_features; of whole images: with the score's maps), when the caller has them."""
    if fitted.tiling is None:
        features = features if features is not None else image_features(model, images, fitted.maps)
        return ScanScores(fitted.score(features), fitted.dead_frames(features), [], features.errors)
    features = features if features is not None else image_features(model, images)
    tile_maps = torch.cat([score_maps(model, as_floats(chunk), fitted) for chunk in eval_batches(images)])
    return ScanScores.of(fitted.tiling.stitch_all(tile_maps.cpu().numpy(), sizes), fitted.dead_frames(features),
                         fitted.tiling.scan_of_each_tile(sizes), features.errors)
