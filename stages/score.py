"""Stage score: one pass of the trained model over both splits, and over the synthetic anomalies.

Fits the anomaly score (anomaly.score) on the normal training images; the detector
(aepipe.anomaly.detector) scores every validation image with it, marking which normal images
calibrate the threshold and which test it (the one place that split is made); scores every
corruption of each normal test image, measures how well the anomaly map finds the patch, and keeps
the most anomalous images with their maps. Also the seed's per-batch reconstruction loss, and the
latent vector of every image of both splits."""

import numpy as np
import pandas as pd
import torch

from aepipe.anomaly.blur_choice import choose_map_sigma, described
from aepipe.anomaly.corruptions import corrupt, patch_mask
from aepipe.anomaly.detection import (
    DEAD_FRAME,
    aupro,
    calibration_roles,
    given_roles,
    pixel_roc_auc,
)
from aepipe.anomaly.detector import Detector
from aepipe.anomaly.scores import MapSpec, fit_score, image_features
from aepipe.anomaly.verdicts import Scores
from aepipe.atomic import atomic_path, file_sha256, write_csv, write_json
from aepipe.data.dataset import (
    TiledScans,
    load_classes,
    load_inspection_extras,
    load_split,
    load_tiles,
)
from aepipe.devices import resolve_device, to_numpy_images, to_pixels, to_tensor
from aepipe.model.autoencoder import load_model
from aepipe.model.inference import shuffled_batch_means
from aepipe.params import load_params, resolve_auto
from aepipe.run_guard import run_guarded

# validation images kept with their anomaly maps, for the evaluate stage's figure
MOST_ANOMALOUS = 16


def main() -> None:
    classes = load_classes("data/raw")
    params = resolve_auto(load_params("params.yaml"), classes.inspection, classes.labelled)
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device, images=(params.data.channels, params.data.side))
    train = load_split("data/raw", "train", params.data.train_size)
    train_features = image_features(model, to_pixels(train.images, device))
    train_normal = np.isin(train.labels, params.data.normal_classes)
    _write_batch_losses("train", train_features.errors[train_normal], params)

    val = load_split("data/raw", "val", params.data.val_size)
    val_images = to_tensor(val.images, device)
    calibration, masks = load_inspection_extras("data/raw", params.data.val_size)
    tiles = load_tiles("data/raw")
    labels, val_normal, roles = _roles(val.labels, calibration, tiles, params)
    maps, blur = _map_spec(
        model, val_images, _tiles_of(tiles, np.flatnonzero(roles == "calibration")), params
    )
    fitted = fit_score(
        params.anomaly.score,
        train_features[train_normal],
        train.labels[train_normal],
        maps,
        tiles.tiling if tiles else None,
    )
    score_of_model = {**fitted.to_dict(), "model_sha256": file_sha256("models/model.pt")}
    write_json("models/anomaly_score.json", score_of_model)
    detector = Detector(model, fitted).to(device)
    # Every validation image once, with its map: the maps that locate defects and show the most
    # anomalous images are the ones the detector scores by.
    per_image = detector.score(val_images, with_maps=True)
    val_tile_normal = np.isin(val.labels, params.data.normal_classes)
    _write_batch_losses("val", per_image.errors[val_tile_normal], params)
    scored = detector.scans(per_image, tiles.sizes["val"]) if tiles else per_image
    _write_val_scores(labels, val_normal, roles, scored)
    localisation = _score_corruptions(
        detector, val_images, np.flatnonzero(roles == "test"), params, tiles
    )
    if masks is not None:
        localisation |= _locate_defects(detector, masks, roles, scored, tiles) | blur
    write_json("data/scores/localisation.json", localisation)
    _keep_most_anomalous(val_images, per_image, scored, maps.kind, tiles)
    with atomic_path("data/latents.npz") as tmp:
        val_latents = {"latents": per_image.latents, "labels": val.labels}
        # a scan's: its tiles' mean, what the drift watch compares (the reference, the line's)
        scans = {"scan_latents": scored.latents} if tiles else {}
        np.savez(
            tmp,
            **val_latents,
            **scans,
            train_latents=train_features.latents,
            train_labels=train.labels,
        )


def _roles(
    tile_labels: np.ndarray, calibration: np.ndarray | None, tiles: TiledScans | None, params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each validation image's (a scan's: its first tile's) label, whether it is normal, and its
    role: calibration or test."""
    first = tiles.first_tiles("val") if tiles else np.arange(len(tile_labels))
    labels = tile_labels[first]
    normal = np.isin(labels, params.data.normal_classes)
    roles = (
        calibration_roles(normal, params.anomaly.calibration_fraction, params.seed)
        if calibration is None
        else given_roles(normal, calibration[first])
    )
    return labels, normal, roles


def _write_val_scores(
    labels: np.ndarray, normal: np.ndarray, roles: np.ndarray, scored: Scores
) -> None:
    write_csv(
        "data/scores/val_images.csv",
        pd.DataFrame(
            {
                "index": np.arange(len(labels)),
                "label": labels,
                "normal": normal,
                "role": roles,
                "loss": scored.errors,
                "score": scored.scores,
                DEAD_FRAME: scored.dead,
            }
        ),
    )


def _map_spec(model, images: torch.Tensor, calibration: np.ndarray, params) -> tuple[MapSpec, dict]:
    """The map the score reads and its blur; anomaly.map_sigma auto (an inspection set's) chosen on
    the calibration images (aepipe.anomaly.blur_choice; a scan's tiles), with how it was chosen."""
    if params.anomaly.map_sigma != "auto":
        return MapSpec(params.anomaly.map, params.anomaly.map_sigma), {}
    chosen = images[torch.from_numpy(calibration).to(images.device)]
    choice = choose_map_sigma(model, chosen, params.anomaly.map, params.seed)
    return MapSpec(params.anomaly.map, choice.sigma), {"map_sigma_choice": described(choice)}


def _tiles_of(tiles: TiledScans | None, scans: np.ndarray) -> np.ndarray:
    """The validation tiles of these scans, in order (the images themselves, untiled)."""
    return scans if tiles is None else tiles.tiles_of("val", scans)


def _write_batch_losses(split: str, normal_errors: np.ndarray, params) -> None:
    batches = shuffled_batch_means(normal_errors, params.train.batch_size, params.seed)
    write_csv(
        f"data/scores/{split}_batches.csv",
        pd.DataFrame({"batch": np.arange(1, len(batches) + 1), "loss": batches}),
    )


def _score_corruptions(
    detector: Detector,
    images: torch.Tensor,
    normal_test: np.ndarray,
    params,
    tiles: TiledScans | None,
) -> dict:
    """The synthetic anomalies are made from the normal images that test the threshold, not those
    that set it (a scan's: from each of its tiles); scored here, so that evaluate needs neither the
    model nor torch. The patch's maps are scored pixel by pixel against where the squares are."""
    originals = images[torch.from_numpy(_tiles_of(tiles, normal_test)).to(images.device)]
    corrupted = corrupt(originals, params.anomaly.corruptions, params.seed)
    columns, localisation = {"index": normal_test}, {}
    for name, batch in corrupted.items():
        per_image = detector.score(batch, with_maps=name == "patch" or tiles is not None)
        scored = (
            detector.scans(per_image, [tiles.sizes["val"][scan] for scan in normal_test])
            if tiles
            else per_image
        )
        columns |= {name: scored.scores, f"{name}.{DEAD_FRAME}": scored.dead}
        if name == "patch":
            masks = patch_mask(originals, params.anomaly.corruptions.patch, params.seed)
            localisation["patch_pixel_roc_auc"] = pixel_roc_auc(per_image.maps, masks.cpu().numpy())
    write_csv("data/scores/corrupted_images.csv", pd.DataFrame(columns))
    return localisation


def _locate_defects(
    detector: Detector,
    masks: np.ndarray,
    roles: np.ndarray,
    scored: Scores,
    tiles: TiledScans | None,
) -> dict:
    """An inspection set's defects located: its test images' (good and defective) maps as the
    detector scores them (a scan's: stitched) against the masks, pixel by pixel."""
    tested = np.flatnonzero(roles != "calibration")
    truth = masks if tiles is None else tiles.maps("val", masks)
    if tiles is None:
        maps, truth = scored.maps[tested], truth[tested] > 0
    else:
        maps, truth = [scored.maps[scan] for scan in tested], [truth[scan] > 0 for scan in tested]
    return {
        "map": detector.maps.kind,
        "map_sigma": detector.maps.sigma,
        "pixel_roc_auc": pixel_roc_auc(maps, truth),
        "aupro": aupro(maps, truth),
    }


def _keep_most_anomalous(
    images: torch.Tensor, per_image: Scores, scored: Scores, map_kind: str, tiles: TiledScans | None
) -> None:
    """The highest scoring images with their maps (of a scan: the tile where its stitched map
    peaks, with its own map)."""
    top = np.argsort(scored.scores, kind="stable")[::-1][:MOST_ANOMALOUS]
    shown = (
        top
        if tiles is None
        else np.array([tiles.peak_tile("val", scan, scored.maps[scan]) for scan in top])
    )
    chosen = images[torch.from_numpy(shown.copy()).to(images.device)]
    with atomic_path("data/scores/most_anomalous.npz") as tmp:
        np.savez(
            tmp,
            index=top,
            images=to_numpy_images(chosen),
            maps=per_image.maps[shown],
            map_kind=np.array(map_kind),
        )


if __name__ == "__main__":
    run_guarded(main)
