"""The defect segmenter: its synthetic defects, its place in the model's checkpoint, and that it
learns to find defects the autoencoder alone does not single out."""

import numpy as np
import pytest
import torch

from aepipe.anomaly.detection import pixel_roc_auc
from aepipe.anomaly.maps import anomaly_maps
from aepipe.errors import AepipeError
from aepipe.model.autoencoder import AutoEncoder, load_model, save_model
from aepipe.model.segmenter import levels
from aepipe.model.segmenter_training import images_per_batch, train_segmenter
from aepipe.model.synthetic_defects import DefectMaker
from aepipe.params import TrainParams, load_params
from conftest import REPO
from test_inspection import texture


def stripes(count: int, side: int = 32, seed: int = 0) -> torch.Tensor:
    """(count, 3, side, side) uint8 images of the inspection tests' striped colour texture."""
    rng = np.random.default_rng(seed)
    return (
        torch.from_numpy(np.stack([texture(rng, side) for _ in range(count)]))
        .permute(0, 3, 1, 2)
        .contiguous()
    )


@pytest.mark.parametrize("side, expected", [(28, 2), (32, 3), (64, 3), (30, 1)])
def test_the_unet_halves_an_image_while_it_is_even_three_times_at_most(side, expected):
    assert levels(side) == expected


@pytest.mark.parametrize("side, expected", [(28, 32), (64, 32), (128, 8), (256, 2), (2048, 1)])
def test_a_batch_of_larger_images_holds_as_many_pixels_as_one_of_64_pixels(side, expected):
    # at 256×256, 32 images took 3.4 GB more memory (bench/image_sizes.py)
    assert images_per_batch(side) == expected


def test_the_segmenter_is_saved_with_the_model_and_only_when_there_is_one(tmp_path):
    model = AutoEncoder(8, 32, 3)
    save_model(model, tmp_path / "plain.pt")
    plain = torch.load(tmp_path / "plain.pt", weights_only=True)
    assert "segmenter_depth" not in plain and not any(
        key.startswith("segmenter.") for key in plain["state_dict"]
    )
    with pytest.raises(
        AepipeError, match="trained without a segmenter.*expected a model trained with one"
    ):
        anomaly_maps(load_model(tmp_path / "plain.pt"), stripes(2), "segmenter")

    model.segmenter = train_segmenter(model, stripes(16), recipe(1), seed=0, log=lambda _: None)
    save_model(model, tmp_path / "with.pt")
    loaded = load_model(tmp_path / "with.pt")
    assert loaded.segmenter is not None and not loaded.segmenter.training
    images = stripes(4, seed=1)
    assert torch.allclose(
        anomaly_maps(loaded, images, "segmenter"),
        anomaly_maps(model, images, "segmenter"),
        atol=1e-6,
    )


def test_the_segmenter_learns_to_find_defects_that_the_error_map_misses():
    """A barely trained autoencoder reconstructs the stripes badly everywhere, so its error map
    cannot single out a defect; a segmenter trained on synthetic defects beside it can."""
    torch.manual_seed(0)
    side = 16  # the smallest the model takes: a quarter of the time at 32
    model = AutoEncoder(8, side, 3)
    trained = train_segmenter(model, stripes(512, side), recipe(8), seed=0, log=lambda _: None)
    defective, masks = DefectMaker(recipe(8).defects)(
        stripes(128, side, seed=2).float() / 255, torch.Generator().manual_seed(1)
    )
    pixels = (defective * 255).round().to(torch.uint8)
    truth = masks.numpy() > 0
    error_auc = pixel_roc_auc(anomaly_maps(model, pixels, "error").numpy(), truth)
    model.segmenter = trained
    segmenter_auc = pixel_roc_auc(anomaly_maps(model, pixels, "segmenter").numpy(), truth)
    # measured: 0.90, 0.45
    assert segmenter_auc > 0.85 and segmenter_auc > error_auc + 0.3, (segmenter_auc, error_auc)


def recipe(epochs: int, **changes) -> TrainParams:
    """params.yaml's training recipe with `epochs` of the segmenter."""
    return load_params(REPO / "params.yaml").train.model_copy(
        update={"segmenter_epochs": epochs, **changes}
    )
