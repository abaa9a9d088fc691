"""The denoising autoencoder (train.noise_std) and the measures of denoising: noise only when asked,
clean targets, exact resume, a clear gain over a plain model, SSIM by hand."""

import numpy as np
import pytest
import torch

from aepipe.data.dataset import load_split
from aepipe.devices import to_tensor
from aepipe.model.autoencoder import AutoEncoder, describe_training, load_model, save_model
from aepipe.model.inference import reconstruct
from aepipe.model.training import train
from aepipe.noise import add_gaussian_noise, noisy_inputs
from aepipe.params import load_params
from aepipe.similarity import psnr, ssim
from conftest import REPO


@pytest.fixture(scope="module")
def images(raw_dir):
    cpu = torch.device("cpu")
    return to_tensor(load_split(raw_dir, "train", 16384).images, cpu), to_tensor(
        load_split(raw_dir, "val", 512).images, cpu
    )


def params(**changes):
    return load_params(REPO / "params.yaml").train.model_copy(
        update={"epochs": 2, "device": "cpu", **changes}
    )


class Recorder(AutoEncoder):
    """Keeps what training feeds the model and what it gives back."""

    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, images):
        reconstruction, latents = super().forward(images)
        if self.training:
            Recorder.calls.append((images.detach().clone(), reconstruction.detach().clone()))
        return reconstruction, latents


def recorded_training(images, monkeypatch, **changes):
    Recorder.calls = []
    monkeypatch.setattr("aepipe.model.training.AutoEncoder", Recorder)
    result = train(images[0][:1024], images[1], params(**changes), seed=0, log=lambda line: None)
    return result, Recorder.calls


def test_the_model_sees_noise_only_when_asked_and_the_loss_compares_with_clean_images(
    images, monkeypatch
):
    training_images = {image.numpy().tobytes() for image in images[0][:1024]}
    plain, plain_calls = recorded_training(images, monkeypatch)
    assert len(plain_calls) == 2 * 16 and all(
        row.numpy().tobytes() in training_images for inputs, _ in plain_calls for row in inputs
    )

    noisy, noisy_calls = recorded_training(images, monkeypatch, noise_std=0.5)
    assert not any(
        row.numpy().tobytes() in training_images for inputs, _ in noisy_calls for row in inputs
    )
    assert all(inputs.min() >= 0 and inputs.max() <= 1 for inputs, _ in noisy_calls)
    # Same seed, same order and initial weights: the first step's batch is the plain run's first
    # input.
    clean_first_batch, (noisy_first_batch, noisy_first_output) = plain_calls[0][0], noisy_calls[0]
    assert not torch.equal(noisy_first_batch, clean_first_batch)
    expected = torch.nn.functional.mse_loss(noisy_first_output, clean_first_batch).item()
    assert noisy.history.batch_losses[0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert noisy.model.noise_std == 0.5 and plain.model.noise_std == 0


def test_a_resumed_denoising_run_draws_the_same_noise_and_ends_exactly_as_an_uninterrupted_one(
    images, tmp_path
):
    denoising = params(noise_std=0.5, epochs=3)
    data = images[0][:1024], images[1][:128]
    uninterrupted = train(*data, denoising, seed=0, log=lambda line: None)

    class Killed(Exception):
        pass

    # called after epoch 2's losses are known, before its checkpoint is written
    def kill_in_epoch_two(history, epoch):
        if epoch == 1:
            raise Killed

    checkpoint = tmp_path / "train.pt"
    with pytest.raises(Killed):
        train(
            *data,
            denoising,
            seed=0,
            log=lambda line: None,
            checkpoint=checkpoint,
            on_epoch=kill_in_epoch_two,
        )
    lines = []
    resumed = train(*data, denoising, seed=0, log=lines.append, checkpoint=checkpoint)
    assert "resuming from the checkpoint after epoch 1/3" in lines
    assert np.array_equal(resumed.history.batch_losses, uninterrupted.history.batch_losses)
    for name, tensor in uninterrupted.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_a_short_denoising_run_denoises_heavy_noise_far_better_than_a_plain_one(images):
    plain = train(*images, params(), seed=0, log=lambda line: None)
    denoising = train(*images, params(noise_std=0.5), seed=0, log=lambda line: None)
    clean = images[1]
    noisy = add_gaussian_noise(clean, 0.5, seed=0)
    plain_db = psnr(reconstruct(plain.model, noisy), clean).mean().item()
    denoised_db = psnr(reconstruct(denoising.model, noisy), clean).mean().item()
    assert denoised_db > plain_db + 3, (plain_db, denoised_db)
    assert denoised_db > psnr(noisy, clean).mean().item() + 3


def test_the_checkpoint_records_a_denoising_autoencoder_and_a_plain_one_keeps_its_old_form(
    tmp_path,
):
    model = AutoEncoder(4)
    save_model(model, tmp_path / "plain.pt")
    assert "noise_std" not in torch.load(tmp_path / "plain.pt", weights_only=True)
    model.noise_std = 0.3
    save_model(model, tmp_path / "denoising.pt")
    assert load_model(tmp_path / "plain.pt").noise_std == 0
    loaded = load_model(tmp_path / "denoising.pt")
    assert (
        loaded.noise_std == 0.3
        and "denoising autoencoder" in describe_training(loaded)
        and "0.3" in describe_training(loaded)
    )
    assert describe_training(load_model(tmp_path / "plain.pt")).startswith("plain autoencoder")


def test_noisy_inputs_draw_a_std_per_image_up_to_the_maximum_from_the_generator():
    grey = torch.full((2000, 1, 28, 28), 0.5)  # far from 0 and 1: no clipping at these stds
    noisy = noisy_inputs(grey, 0.1, torch.Generator().manual_seed(1))
    stds = (noisy - grey).flatten(1).std(dim=1)
    assert 0 < stds.min() < 0.01 and 0.09 < stds.max() < 0.11  # sample stds of 784 pixels: ±3 %
    assert stds.mean().item() == pytest.approx(0.05, abs=0.005)  # uniform in [0, 0.1]
    assert torch.equal(noisy, noisy_inputs(grey, 0.1, torch.Generator().manual_seed(1)))
    assert not torch.equal(noisy, noisy_inputs(grey, 0.1, torch.Generator().manual_seed(2)))


def test_ssim_of_an_image_with_itself_is_one_and_of_flat_images_the_luminance_term():
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.random((1, 1, 28, 28), dtype=np.float32))
    assert ssim(image, image).item() == pytest.approx(1, abs=1e-6)
    a, b = 0.2, 0.6  # flat images: no variance, so SSIM = (2ab + C1) / (a² + b² + C1)
    flat_a, flat_b = torch.full((1, 1, 28, 28), a), torch.full((1, 1, 28, 28), b)
    assert ssim(flat_a, flat_b).item() == pytest.approx(
        (2 * a * b + 0.01**2) / (a**2 + b**2 + 0.01**2), rel=1e-4
    )
    assert (
        ssim(add_gaussian_noise(image, 0.3, seed=0), image).item()
        < ssim(add_gaussian_noise(image, 0.1, seed=0), image).item()
        < 1
    )


class Copier(AutoEncoder):
    """Gives back what it is given: it removes no noise."""

    def __init__(self):
        super().__init__(2, 28, 1)

    def forward(self, images):
        return images, images.flatten(1)[:, :2]


def test_the_denoising_report_measures_each_level_against_the_clean_images():
    from aepipe.denoising import denoising_report, headline

    clean = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    judged = []
    report, shown = denoising_report(
        Copier(),
        clean,
        [0.1, 0.5],
        seed=0,
        shown=2,
        accuracy=lambda images: judged.append(len(images)) or 0.5,
    )
    light, heavy = report["noise_std_0_1"], report["noise_std_0_5"]
    assert heavy["psnr_reconstructed_db"] == heavy["psnr_noisy_db"], "a copier removes nothing"
    assert light["psnr_noisy_db"] > heavy["psnr_noisy_db"] and report["clean"][
        "ssim_reconstructed"
    ] == pytest.approx(1)
    assert headline(report, [0.1, 0.5]) == {
        "psnr_gain": 0.0,
        "denoised_ssim": heavy["ssim_reconstructed"],
        "noisy_acc": 0.5,
        "denoised_acc": 0.5,
    }
    assert judged == [6] * 6, "the judge sees the clean, reconstructed, noisy and denoised images"
    assert torch.equal(shown[1][0], add_gaussian_noise(clean, 0.5, 0)[2:3]) and torch.equal(
        shown[1][0], shown[1][1]
    )
