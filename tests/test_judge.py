"""The judge (a classifier of the autoencoder's images), latent sampling and the Fréchet
distance."""

import numpy as np
import pytest
import scipy.linalg
import torch

from aepipe.data.dataset import load_split
from aepipe.devices import to_tensor
from aepipe.errors import AepipeError
from aepipe.latent.sampling import (
    coverage,
    frechet_distance,
    gaussian_frechet_distance,
    sample_latents,
)
from aepipe.model.autoencoder import AutoEncoder, save_model
from aepipe.model.judge import Judge, judge_images, load_judge, save_judge, train_judge
from aepipe.params import JudgeParams

# --- the Fréchet distance
# ------------------------------------------------------------------------------------


def test_frechet_distance_of_two_diagonal_gaussians_is_the_hand_computed_one():
    # Diagonal covariances commute: Tr(Σa + Σb − 2(ΣaΣb)^½) = Σ (σa − σb)² per axis.
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([3.0, 1.0, -2.0])
    std_a, std_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])
    expected = (3**2 + 0 + 4**2) + ((1 - 3) ** 2 + 0 + (0.5 - 1.5) ** 2)  # 25 + 5
    assert gaussian_frechet_distance(
        mean_a, np.diag(std_a**2), mean_b, np.diag(std_b**2)
    ) == pytest.approx(expected)


def test_frechet_distance_of_correlated_gaussians_matches_a_general_matrix_square_root():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    cov_a, cov_b = a @ a.T, b @ b.T  # full, non-commuting covariances
    mean_a, mean_b = rng.normal(size=5), rng.normal(size=5)
    reference = np.sum((mean_a - mean_b) ** 2) + np.trace(
        cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real
    )
    assert gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(
        reference, rel=1e-9
    )
    assert gaussian_frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_of_samples_estimates_that_of_their_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal([0, 0], [1, 1], size=(200_000, 2))
    b = rng.normal([2, 0], [1, 3], size=(200_000, 2))
    assert frechet_distance(a, b) == pytest.approx(4 + (3 - 1) ** 2, rel=0.01)  # 8
    assert frechet_distance(a[:100_000], a[100_000:]) < 0.001


def test_frechet_distance_with_fewer_images_than_features_is_finite_and_not_negative():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, 128)), rng.normal(size=(20, 128))
    distance = frechet_distance(a, b)
    assert np.isfinite(distance) and distance > 0


# --- sampling the latent space
# -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_clusters():
    rng = np.random.default_rng(3)
    latents = np.concatenate(
        [rng.normal(-5, 0.5, size=(3000, 4)), rng.normal(5, 1.0, size=(1000, 4))]
    )
    return latents.astype(np.float32), np.repeat([0, 1], [3000, 1000])


@pytest.mark.parametrize("distribution", ["gaussian", "class_gaussian", "mixture"])
def test_samples_are_seeded_and_of_the_asked_shape(two_clusters, distribution):
    latents, labels = two_clusters
    first = sample_latents(latents, labels, distribution, count=500, seed=0, components=2)
    assert first.shape == (500, 4) and first.dtype == np.float32
    assert np.array_equal(
        first, sample_latents(latents, labels, distribution, count=500, seed=0, components=2)
    )
    assert not np.array_equal(
        first, sample_latents(latents, labels, distribution, count=500, seed=1, components=2)
    )


def test_one_gaussian_matches_the_latents_mean_and_covariance(two_clusters):
    latents, labels = two_clusters
    drawn = sample_latents(latents, labels, "gaussian", count=50_000, seed=0)
    np.testing.assert_allclose(drawn.mean(axis=0), latents.mean(axis=0), atol=0.1)
    np.testing.assert_allclose(np.cov(drawn, rowvar=False), np.cov(latents, rowvar=False), atol=0.3)
    # One Gaussian over two clusters fills the empty middle; per-class Gaussians and a mixture do
    # not.
    assert np.mean(np.abs(drawn[:, 0]) < 2) > 0.1


@pytest.mark.parametrize("distribution", ["class_gaussian", "mixture"])
def test_cluster_aware_samples_keep_each_cluster_and_its_share(two_clusters, distribution):
    latents, labels = two_clusters
    drawn = sample_latents(latents, labels, distribution, count=20_000, seed=0, components=2)
    assert np.mean(np.abs(drawn[:, 0]) < 2) < 0.01
    assert np.mean(drawn[:, 0] < 0) == pytest.approx(0.75, abs=0.02)
    assert 0.4 < np.mean(drawn[:1000, 0] < 0) / 0.75 < 1.3, (
        "the samples should come in random order, not by cluster"
    )


def test_coverage_counts_what_the_judge_saw():
    seen = coverage(np.array([0, 0, 1, 1, 1, 1, 2, 2]), ["a", "b", "c"], wanted=[0, 1, 2])
    assert seen["class_shares"] == {"a": 0.25, "b": 0.5, "c": 0.25}
    assert seen["smallest_normal_class_share"] == 0.25
    expected_entropy = -(2 * 0.25 * np.log(0.25) + 0.5 * np.log(0.5)) / np.log(3)
    assert seen["normal_class_entropy"] == pytest.approx(expected_entropy)
    one_class = coverage(np.array([1, 1, 1, 0]), ["a", "b", "c"], wanted=[1])
    assert (
        one_class["smallest_normal_class_share"] == 0.75
        and one_class["normal_class_entropy"] == 1.0
    )


# --- the judge
# -----------------------------------------------------------------------------------------------


def test_a_judge_trained_one_epoch_on_a_slice_is_far_above_chance(raw_dir):
    train, val = load_split(raw_dir, "train", 3000), load_split(raw_dir, "val", 1000)
    device = torch.device("cpu")
    params = JudgeParams(epochs=1, batch_size=64, lr=0.003, seed=0, train_size=3000)
    result = train_judge(
        to_tensor(train.images, device),
        torch.as_tensor(train.labels.astype(np.int64)),
        to_tensor(val.images, device),
        val.labels,
        10,
        params,
        log=lambda line: None,
    )
    assert len(result.epoch_accuracies) == 1 and result.epoch_accuracies[0] > 0.85  # chance: 0.1
    verdicts = judge_images(result.judge, to_tensor(val.images, device))
    assert verdicts.accuracy(val.labels) == result.epoch_accuracies[0]
    assert verdicts.features.shape == (1000, 128) and np.all(verdicts.features >= 0)  # after a ReLU
    assert np.all((verdicts.confidence > 0.1) & (verdicts.confidence <= 1))


def test_judge_checkpoint_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    judge = Judge(classes=4).eval()
    save_judge(judge, tmp_path / "judge.pt")
    loaded = load_judge(tmp_path / "judge.pt")
    images = torch.rand(6, 1, 28, 28)
    assert loaded.classes == 4
    # channels-last sums in another order
    torch.testing.assert_close(loaded(images), judge(images), rtol=0, atol=1e-5)

    save_judge(None, tmp_path / "none.pt")  # images without classes: no judge, said so in the file
    assert load_judge(tmp_path / "none.pt") is None

    save_model(AutoEncoder(3), tmp_path / "model.pt")
    with pytest.raises(AepipeError, match="model.pt: not an aepipe judge checkpoint"):
        load_judge(tmp_path / "model.pt")
    with pytest.raises(
        AepipeError, match="missing.pt: model file not found; run the judge stage first"
    ):
        load_judge(tmp_path / "missing.pt")
