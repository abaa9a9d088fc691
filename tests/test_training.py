import numpy as np
import pytest
import torch

from aepipe.data.dataset import load_split
from aepipe.devices import to_tensor
from aepipe.model.inference import batch_means, mean_squared_error, per_image_errors
from aepipe.model.training import TrainingDiverged, train
from aepipe.params import load_params
from conftest import REPO


@pytest.fixture(scope="module")
def images(raw_dir):
    cpu = torch.device("cpu")
    return to_tensor(load_split(raw_dir, "train", 1024).images, cpu), to_tensor(
        load_split(raw_dir, "val", 256).images, cpu
    )


@pytest.fixture
def small_params():
    return load_params(REPO / "params.yaml").train.model_copy(update={"epochs": 2, "device": "cpu"})


def test_to_tensor_scales_like_torchvision_to_tensor():
    pixels = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    tensor = to_tensor(pixels, torch.device("cpu"))
    assert tensor.shape == (1, 1, 2, 2) and tensor.dtype == torch.float32
    assert tensor.flatten().tolist() == pytest.approx([0.0, 1.0, 0.2, 0.4])


def test_training_lowers_the_validation_loss_and_records_every_step(images, small_params):
    result = train(*images, small_params, seed=0, log=lambda line: None)
    assert result.history.batch_losses.shape == (2, 16)  # 1024 images / batch 64
    assert result.history.val_losses[-1] < result.history.initial_val_loss
    assert result.history.train_losses[-1] < result.history.train_losses[0]
    assert result.history.train_losses[1] == pytest.approx(
        result.history.batch_losses[1].mean().item(), rel=1e-6
    )
    assert result.sample_reconstructions.shape == (2, 16, 28, 28)
    assert result.history.val_losses[-1] == pytest.approx(
        mean_squared_error(result.model, images[1]), rel=1e-6
    )


def test_same_seed_same_result_and_different_seed_differs(images, small_params):
    first = train(*images, small_params, seed=3, log=lambda line: None)
    second = train(*images, small_params, seed=3, log=lambda line: None)
    other = train(*images, small_params, seed=4, log=lambda line: None)
    assert np.array_equal(first.history.batch_losses, second.history.batch_losses)
    for name, tensor in first.model.state_dict().items():
        assert torch.equal(tensor, second.model.state_dict()[name]), name
    assert not np.array_equal(first.history.batch_losses, other.history.batch_losses)


def test_non_finite_loss_stops_training_naming_epoch_and_step(images, small_params):
    poisoned = images[0].clone()
    # after the first shuffle the NaN images are everywhere but one batch
    poisoned[5:] = float("nan")
    with pytest.raises(
        TrainingDiverged, match=r"loss is nan at epoch 1, step \d+; no model was written"
    ):
        train(poisoned, images[1], small_params, seed=0, log=lambda line: None)


def test_per_image_errors_match_the_batch_mse():
    torch.manual_seed(0)
    from aepipe.model.autoencoder import AutoEncoder

    model = AutoEncoder(4)
    batch = torch.rand(10, 1, 28, 28)
    errors = per_image_errors(model, batch)
    assert errors.shape == (10,)
    with torch.no_grad():
        assert errors.mean().item() == pytest.approx(
            torch.nn.functional.mse_loss(model(batch)[0], batch).item(), rel=1e-6
        )


def test_batch_means_groups_consecutive_images_with_a_short_last_batch():
    assert batch_means(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 2).tolist() == [1.5, 3.5, 5.0]
    assert batch_means(np.arange(128.0), 64).tolist() == [31.5, 95.5]


def test_dvclive_says_after_every_epoch_how_far_training_got(
    images, small_params, tmp_path, monkeypatch
):
    """What `dvc exp show` shows of a queued experiment while it trains: the train stage's
    LossLogger writes dvclive/metrics.json (its step, the latest validation MSE) as each epoch ends,
    and its final numbers to the stage's headline file."""
    import json
    import os

    from aepipe.model.loss_logger import LossLogger, WholeFileLive

    monkeypatch.chdir(tmp_path)
    logger = LossLogger(
        WholeFileLive("dvclive", dvcyaml=None, save_dvc_exp=False), tmp_path / "headline.json"
    )
    seen, linked = [], []

    def log_and_look(history, epoch):
        logger(history, epoch)
        metrics = tmp_path / "dvclive" / "metrics.json"
        seen.append(json.loads(metrics.read_text()))
        # a second name for this epoch's file: a rewrite in place would change it too
        linked.append(tmp_path / f"epoch{epoch}.json")
        os.link(metrics, linked[-1])

    result = train(
        *images,
        small_params.model_copy(update={"epochs": 3}),
        seed=0,
        log=lambda line: None,
        on_epoch=log_and_look,
    )
    assert [metrics["step"] for metrics in seen] == [1, 2, 3]
    assert [json.loads(path.read_text())["step"] for path in linked] == [1, 2, 3], (
        "each epoch's summary a new file, renamed over the last"
    )
    assert [metrics["val_mse"] for metrics in seen] == pytest.approx(result.history.val_losses)
    plot = tmp_path / "dvclive" / "plots" / "custom" / "batch_mse.json"
    assert not plot.exists(), "the step plot is written once, when the training is done"
    logger.finish(seconds=1.5, segmenter_seconds=None)
    steps = json.loads(plot.read_text())
    assert len(steps) == result.history.batch_losses.numel(), "every step's loss is in the plot"
    headline = json.loads((tmp_path / "headline.json").read_text())
    assert (
        headline["step"] == 3 and headline["train_seconds"] == 1.5 and "train_mse" not in headline
    )


def test_shuffled_batch_means_are_the_seeds_batches_in_a_seeded_order():
    from aepipe.model.inference import shuffled_batch_means

    errors = np.arange(10, dtype=np.float64)
    shuffled = shuffled_batch_means(errors, 4, seed=3)
    order = np.random.default_rng(3).permutation(10)
    assert shuffled.tolist() == batch_means(errors[order], 4).tolist() and len(shuffled) == 3
    assert shuffled.tolist() != batch_means(errors, 4).tolist()
    assert shuffled_batch_means(errors, 4, seed=3).tolist() == shuffled.tolist()
