import numpy as np
import pytest
import torch

from aepipe.latent.tsne import knn_accuracy, tsne
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.inference import errors_and_latents, interpolate
from aepipe.noise import add_gaussian_noise
from aepipe.similarity import psnr


@pytest.fixture
def model():
    torch.manual_seed(0)
    return AutoEncoder(latent_dim=5).eval()


def test_interpolation_runs_from_start_to_end_in_order(model):
    start, end = torch.randn(5), torch.randn(5)
    decoded = interpolate(model, start, end, steps=7)
    assert decoded.shape == (7, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(decoded[0], model.decode(start[None])[0], atol=1e-6)
        assert torch.allclose(decoded[-1], model.decode(end[None])[0], atol=1e-6)
        middle = model.decode(((start + end) / 2)[None])[0]
    assert torch.allclose(decoded[3], middle, atol=1e-6)


def test_one_batched_pass_gives_the_errors_and_latents_of_one_big_pass(model):
    images = torch.rand(2500, 1, 28, 28)  # more than one evaluation batch
    with torch.no_grad():
        reconstructions, expected_latents = model(images)
    errors, latents = errors_and_latents(model, images)
    assert latents.shape == (2500, 5) and torch.allclose(latents, expected_latents, atol=1e-5)
    assert torch.allclose(
        errors, (reconstructions - images).square().mean(dim=(1, 2, 3)), atol=1e-6
    )


def test_noise_is_seeded_clipped_and_of_the_asked_strength():
    images = torch.full((200, 1, 28, 28), 0.5)
    noisy = add_gaussian_noise(images, std=0.1, seed=7)
    assert torch.equal(noisy, add_gaussian_noise(images, std=0.1, seed=7))
    assert not torch.equal(noisy, add_gaussian_noise(images, std=0.1, seed=8))
    assert (noisy - images).std().item() == pytest.approx(0.1, rel=0.02)
    heavy = add_gaussian_noise(images, std=3.0, seed=7)
    assert heavy.min() == 0 and heavy.max() == 1
    assert torch.equal(images, torch.full((200, 1, 28, 28), 0.5)), "the input was modified"


def test_psnr_of_known_errors():
    reference = torch.zeros(2, 1, 28, 28)
    images = reference.clone()
    images[0] += 0.1  # MSE 0.01 → 20 dB
    images[1] += 0.5  # MSE 0.25 → 6.02 dB
    assert psnr(images, reference).tolist() == pytest.approx([20.0, 10 * np.log10(4)], rel=1e-5)


def test_knn_accuracy_of_separated_and_mixed_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 50)
    separated = rng.normal(size=(150, 2)) * 0.1 + labels[:, None] * 10
    assert knn_accuracy(separated, labels, k=10) == 1.0
    mixed = rng.normal(size=(150, 2))
    assert knn_accuracy(mixed, labels, k=10) < 0.6


def test_tsne_keeps_clusters_and_is_reproducible():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 100)
    points = rng.normal(size=(400, 8)) + labels[:, None] * 6
    options = dict(
        perplexity=20,
        early_exaggeration_iter=50,
        n_iter=100,
        method="fft",
        ints_in_interval=2,
        neighbors="exact",
        n_jobs=1,
        seed=3,
    )
    first, second = tsne(points, **options), tsne(points, **options)
    assert first.embedding.shape == (400, 2)
    assert np.array_equal(first.embedding, second.embedding)
    assert knn_accuracy(first.embedding, labels) == 1.0
    assert first.kl_divergence > 0 and first.seconds > 0
