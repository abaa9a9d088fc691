"""Stage losses: one pass of the trained model over both splits, and over the synthetic anomalies.

Fits the anomaly score (anomaly.score) on the normal training images and scores every validation
image with it, marking which normal images calibrate the threshold and which test it (the one
place that split is made); scores every corruption of each normal test image, measures how well
the anomaly map finds the patch, and keeps the most anomalous images with their maps. Also the
seed's per-batch reconstruction loss, and the latent vector of every image of both splits."""

import numpy as np
import pandas as pd
import torch

from aepipe.atomic import atomic_path, file_sha256, write_csv, write_json
from aepipe.anomaly.corruptions import corrupt, patch_mask
from aepipe.data.dataset import load_classes, load_inspection_extras, load_split
from aepipe.anomaly.detection import DEAD_FRAME, aupro, calibration_roles, given_roles, pixel_roc_auc
from aepipe.devices import resolve_device, to_numpy_images, to_pixels, to_tensor
from aepipe.errors import exit_on_error
from aepipe.model.inference import batch_means
from aepipe.anomaly.maps import anomaly_maps, error_maps, smoothed
from aepipe.model.autoencoder import load_model
from aepipe.params import load_params, resolve_auto
from aepipe.anomaly.scores import FittedScore, MapSpec, fit_score, image_features

MOST_ANOMALOUS = 16  # validation images kept with their anomaly maps, for the evaluate stage's figure


def main() -> None:
    params = resolve_auto(load_params("params.yaml"), load_classes("data/raw").inspection)
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device, images=(params.data.channels, params.data.side))
    train = load_split("data/raw", "train", params.data.train_size)
    train_features = image_features(model, to_pixels(train.images, device))
    train_normal = np.isin(train.labels, params.data.normal_digits)
    maps = MapSpec(params.anomaly.map, params.anomaly.map_sigma)
    fitted = fit_score(params.anomaly.score, train_features[train_normal],
                       train.labels[train_normal], maps)
    write_json("models/anomaly_score.json", {**fitted.to_dict(), "model_sha256": file_sha256("models/model.pt")})
    _write_batch_losses("train", train_features.errors[train_normal], params)

    val = load_split("data/raw", "val", params.data.val_size)
    val_images = to_tensor(val.images, device)
    calibration, masks = load_inspection_extras("data/raw", params.data.val_size)
    val_features = image_features(model, val_images, fitted.maps)
    val_normal = np.isin(val.labels, params.data.normal_digits)
    _write_batch_losses("val", val_features.errors[val_normal], params)
    roles = (calibration_roles(val_normal, params.anomaly.calibration_fraction, params.seed) if calibration is None
             else given_roles(val_normal, calibration))
    scores = fitted.score(val_features)
    write_csv("data/losses/val_images.csv", pd.DataFrame({
        "index": np.arange(len(scores)), "label": val.labels, "normal": val_normal, "role": roles,
        "loss": val_features.errors, "score": scores, DEAD_FRAME: fitted.dead_frames(val_features)}))
    localisation = _score_corruptions(model, fitted, val_images, np.flatnonzero(roles == "test"), params)
    if masks is not None:
        localisation |= _locate_defects(model, val_images, masks, roles, maps)
    write_json("data/losses/localisation.json", localisation)
    _keep_most_anomalous(model, val_images, scores, maps.kind)
    with atomic_path("data/latents.npz") as tmp:
        np.savez(tmp, latents=val_features.latents, labels=val.labels, train_latents=train_features.latents,
                 train_labels=train.labels)


def _write_batch_losses(split: str, normal_errors: np.ndarray, params) -> None:
    """The seed's per-batch loss: batches of the training batch size in a seeded random order, as its
    shuffled DataLoader (MNIST's files are not shuffled: the test set's halves come from different writers)."""
    order = np.random.default_rng(params.seed).permutation(len(normal_errors))
    batches = batch_means(normal_errors[order], params.train.batch_size)
    write_csv(f"data/losses/{split}_batches.csv", pd.DataFrame({"batch": np.arange(1, len(batches) + 1), "loss": batches}))


def _score_corruptions(model, fitted: FittedScore, images: torch.Tensor, normal_test: np.ndarray, params) -> dict:
    """The synthetic anomalies are made from the normal images that test the threshold, not those that
    set it; scored here, so that evaluate needs neither the model nor torch. The patch's anomaly maps
    are scored pixel by pixel against where the squares are."""
    originals = images[normal_test]
    corrupted = corrupt(originals, params.anomaly.corruptions, params.seed)
    columns = {"index": normal_test}
    for name, batch in corrupted.items():
        features = image_features(model, batch, fitted.maps)
        columns |= {name: fitted.score(features), f"{name}.{DEAD_FRAME}": fitted.dead_frames(features)}
    write_csv("data/losses/corrupted_images.csv", pd.DataFrame(columns))
    localisation = {}
    if "patch" in corrupted:
        masks = patch_mask(originals, params.anomaly.corruptions.patch, params.seed)
        localisation["patch_pixel_roc_auc"] = pixel_roc_auc(error_maps(model, corrupted["patch"]).cpu().numpy(),
                                                            masks.cpu().numpy())
    return localisation


def _locate_defects(model, images: torch.Tensor, masks: np.ndarray, roles: np.ndarray, maps: MapSpec) -> dict:
    """An inspection set's defects located: its test images' (good and defective) blurred anomaly maps
    scored pixel by pixel against the masks."""
    tested = np.flatnonzero(roles != "calibration")
    chosen = images[torch.from_numpy(tested).to(images.device)]
    blurred = smoothed(anomaly_maps(model, chosen, maps.kind), maps.sigma).cpu().numpy()
    truth = masks[tested] > 0
    return {"map": maps.kind, "map_sigma": maps.sigma, "pixel_roc_auc": pixel_roc_auc(blurred, truth),
            "aupro": aupro(blurred, truth)}


def _keep_most_anomalous(model, images: torch.Tensor, scores: np.ndarray, map_kind: str) -> None:
    top = np.argsort(scores, kind="stable")[::-1][:MOST_ANOMALOUS]
    chosen = images[torch.from_numpy(top.copy()).to(images.device)]
    with atomic_path("data/losses/most_anomalous.npz") as tmp:
        # The map's kind is written only when it is not the error map: the default run's file stays as it was.
        kind = {} if map_kind == "error" else {"map_kind": np.array(map_kind)}
        np.savez(tmp, index=top, images=to_numpy_images(chosen), maps=anomaly_maps(model, chosen, map_kind).cpu().numpy(),
                 **kind)


if __name__ == "__main__":
    exit_on_error(main)
