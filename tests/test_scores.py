"""The anomaly scores on small data, against values worked out by hand."""

import math

import numpy as np
import pytest
import torch

from aepipe.anomaly.corruptions import patch, patch_mask
from aepipe.anomaly.detection import calibration_roles, calibration_split, pixel_roc_auc
from aepipe.model.inference import errors_and_latents
from aepipe.anomaly.maps import anomaly_maps, error_maps
from aepipe.gaussian_blur import smoothed
from aepipe.model.autoencoder import AutoEncoder
from aepipe.anomaly.scores import (CombinedStatistics, FittedScore, ImageFeatures, MapSpec, fit_score, frame_contrast,
                           image_features, squared_mahalanobis)
from aepipe.similarity import ssim_map

# Two training images. Reconstruction errors 0.01 and 0.04: log-mean log 0.02, log-std log 2. Latents
# -1 and 1: mean 0, variance 2 (np.cov's n - 1), so both lie at squared Mahalanobis distance 1/2, a
# spread of zero (taken as 1). Ink 0.1 and 0.4: log-mean log 0.2, log-std log 2.
# Contrast 0.2 and 0.3: a frame is dead below a quarter of 0.2.
TRAINING = ImageFeatures(errors=np.array([0.01, 0.04]), latents=np.array([[-1.0], [1.0]]), ink=np.array([0.1, 0.4]),
                         contrast=np.array([0.3, 0.2]))
LABELS = np.array([3, 3])


def test_the_latent_distance_is_to_the_nearest_class():
    # Class 0 around (0, 0), class 1 around (10, 0); each with variance 2/3 along both axes (np.cov: n - 1).
    latents = np.array([[-1.0, 0], [1, 0], [0, -1], [0, 1], [9, 0], [11, 0], [10, -1], [10, 1]])
    training = ImageFeatures(np.full(8, 0.02), latents, np.full(8, 0.2), contrast=np.full(8, 0.3))
    fitted = fit_score("combined", training, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert np.asarray(fitted.latent_means).tolist() == [[0, 0], [10, 0]]
    # (2, 0) is 2 from class 0 (squared distance 4 / (2/3) = 6) and 8 from class 1: the nearer one counts.
    assert distances(fitted, [[2.0, 0], [10, 3]]) == pytest.approx([6.0, 13.5])
    assert distances(fit_score("combined", training, np.zeros(8, int)), [[5.0, 0]]) != pytest.approx(6.0)


def distances(fitted, latents: list[list[float]]) -> list[float]:
    statistics = CombinedStatistics.of(fitted)
    return squared_mahalanobis(torch.tensor(latents), statistics.means, statistics.precisions).tolist()


def test_the_reconstruction_score_is_the_reconstruction_error():
    fitted = fit_score("reconstruction", TRAINING, LABELS)
    images = ImageFeatures(np.array([0.5, 0.001]), np.zeros((2, 1)), np.zeros(2))
    assert fitted.score(images).tolist() == [0.5, 0.001]


def test_the_combined_score_sums_its_three_standardised_terms():
    fitted = fit_score("combined", TRAINING, LABELS)
    images = ImageFeatures(errors=np.array([0.08, 0.02, 0.0001]), latents=np.array([[2.0], [0.0], [1.0]]),
                           ink=np.array([0.0125, 0.4, 0.0]))
    terms = fitted.terms(images)
    # error 0.08 is two doublings above 0.02; latent 2 is at squared distance 2 = 4 × 1/2; ink 0.0125 is
    # four halvings below 0.2, two beyond the margin.
    assert terms[0] == pytest.approx([2.0, math.log(4), 2.0])
    # a typical error, a latent at the training mean (a finite term), more ink than usual: no ink term
    assert terms[1, 0] == pytest.approx(0.0) and np.isfinite(terms[1, 1]) and terms[1, 2] == 0.0
    # a blank image: rebuilt far better than typical (log2(0.0001 / 0.02) = -7.6 spreads), counted as
    # -3 only; its ink is taken as 0.001, log2(0.001 / 0.2) = -7.64 spreads below the mean
    assert terms[2, 0] == -3.0 and terms[2, 2] == pytest.approx(-math.log2(0.001 / 0.2) - 2)
    within_margin = ImageFeatures(np.array([0.02]), np.array([[1.0]]), np.array([0.0500001]))  # two halvings: no term
    assert fitted.terms(within_margin)[0, 2] == 0.0
    assert fitted.score(images)[0] == pytest.approx(4 + math.log(4))


def test_a_fitted_score_survives_its_json_round_trip():
    fitted = fit_score("combined", TRAINING, LABELS)
    again = FittedScore.from_dict(fitted.to_dict())
    images = ImageFeatures(np.array([0.03]), np.array([[0.5]]), np.array([0.2]))
    assert again == fitted and again.score(images) == fitted.score(images)
    with pytest.raises(ValueError, match="unknown score method 'psychic'"):
        FittedScore.from_dict({**fitted.to_dict(), "method": "psychic"})


def test_a_frame_far_flatter_than_every_training_image_is_dead_whatever_the_score():
    red, checkers = torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    red[:, 0] = 1.0
    checkers[..., ::2, ::2] = checkers[..., 1::2, 1::2] = 1.0
    assert frame_contrast(torch.cat([red, red])).tolist() == [0.0, 0.0], "one flat colour: no contrast"
    assert frame_contrast(checkers).tolist() == [0.5]
    for method in ("reconstruction", "combined", "map_max"):
        fitted = fit_score(method, TRAINING, LABELS, MapSpec("error", 1.0))
        frames = ImageFeatures(np.full(4, 0.02), np.zeros((4, 1)), np.full(4, 0.2), np.zeros(4),
                               contrast=np.array([0.0, 0.0499, 0.0501, 0.3]))
        assert fitted.dead_below == pytest.approx(0.05) and fitted.dead_frames(frames).tolist() == [True, True, False, False]
        assert FittedScore.from_dict(fitted.to_dict()) == fitted
    # A score file from before the check knows no training contrast: it calls no frame dead.
    older = {key: value for key, value in fit_score("combined", TRAINING, LABELS).to_dict().items() if key != "min_contrast"}
    assert not FittedScore.from_dict(older).dead_frames(frames).any()


def test_image_features_come_from_one_pass_of_the_model():
    torch.manual_seed(0)
    model, images = AutoEncoder(latent_dim=4).eval(), torch.rand(5, 1, 28, 28)
    features = image_features(model, images)
    errors, latents = errors_and_latents(model, images)
    assert np.array_equal(features.errors, errors.numpy()) and np.array_equal(features.latents, latents.numpy())
    assert features.ink == pytest.approx(images.mean(dim=(1, 2, 3)).numpy())
    maps = error_maps(model, images)
    assert maps.shape == (5, 28, 28) and torch.allclose(maps.square().mean(dim=(1, 2)), errors)


def test_patch_mask_marks_exactly_the_pixels_patch_whitens():
    images = torch.zeros(30, 1, 28, 28)
    masks = patch_mask(images, side=6, seed=3)
    assert torch.equal(patch(images, side=6, seed=3)[:, 0] == 1, masks)
    assert masks.sum(dim=(1, 2)).tolist() == [36] * 30


def test_pixel_roc_auc_ranks_pixels_against_the_mask():
    masks = np.zeros((2, 3, 3), bool)
    masks[:, 0, 0] = True
    maps = np.full((2, 3, 3), 0.1)
    maps[:, 0, 0] = 0.9
    assert pixel_roc_auc(maps, masks) == 1.0
    maps[1, 2, 2] = 0.95  # one normal pixel above both anomalous ones: 2 of 32 pairs wrong
    assert pixel_roc_auc(maps, masks) == pytest.approx(1 - 2 / 32)


def test_calibration_roles_split_only_the_normal_images():
    normal = np.array([True, False, True, True, False, True, True])
    roles = calibration_roles(normal, fraction=0.4, seed=5)
    calibration, test = calibration_split(5, 0.4, seed=5)
    assert roles[~normal].tolist() == ["held_out", "held_out"]
    assert np.flatnonzero(roles == "calibration").tolist() == np.flatnonzero(normal)[calibration].tolist()
    assert np.flatnonzero(roles == "test").tolist() == np.flatnonzero(normal)[test].tolist()


class Identity(AutoEncoder):
    """A perfect reconstruction but where `dent` says: there it returns the mean grey."""

    def __init__(self, side: int, dent: tuple[slice, slice] | None = None):
        super().__init__(2, side, 1)
        self.dent = dent

    def forward(self, images):
        rebuilt = images.clone()
        if self.dent:
            rebuilt[(..., *self.dent)] = 0.5
        return rebuilt, images.flatten(1)[:, :2]


def test_map_max_scores_the_peak_of_the_blurred_map_where_the_mean_hardly_moves():
    images = torch.full((2, 1, 32, 32), 0.5)
    images[1, 0, 10:13, 20:23] = 1.0  # a 3×3 defect: 9 of 1,024 pixels
    model = Identity(32, (slice(None), slice(None)))  # rebuilds every image as flat grey
    maps = MapSpec("error", sigma=1.0)
    fitted = fit_score("map_max", image_features(model, images[:1]), np.zeros(1), maps)
    features = image_features(model, images, fitted.maps)
    peak = smoothed(anomaly_maps(model, images, "error"), 1.0).amax(dim=(1, 2))
    assert fitted.score(features).tolist() == pytest.approx(peak.tolist())
    assert features.map_peaks[1] > 0.2 and features.map_peaks[0] == 0 and features.errors[1] < 0.005
    assert FittedScore.from_dict(fitted.to_dict()) == fitted and fitted.to_dict()["maps"] == {"kind": "error", "sigma": 1.0}
    assert "maps" not in fit_score("combined", TRAINING, LABELS, maps).to_dict(), "other scores' files stay as they were"


def test_smoothing_keeps_a_flat_map_and_spreads_a_peak():
    flat = torch.full((1, 20, 20), 0.3)
    assert torch.allclose(smoothed(flat, 2.0), flat)
    peak = torch.zeros(1, 21, 21)
    peak[0, 10, 10] = 1.0
    blurred = smoothed(peak, 2.0)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5) and blurred[0, 10, 10] == blurred.max() < 0.05


def test_the_ssim_map_has_the_images_size_and_sees_a_change_of_texture():
    rng = torch.Generator().manual_seed(0)
    images = torch.rand(1, 3, 32, 32, generator=rng)
    assert torch.allclose(ssim_map(images, images, same_size=True), torch.ones(1, 3, 32, 32), atol=1e-5)
    smeared = images.clone()
    smeared[..., 8:16, 8:16] = images[..., 8:16, 8:16].mean()  # same mean, texture gone
    dissimilarity = 1 - ssim_map(smeared, images, same_size=True).mean(dim=1)[0]
    assert dissimilarity[10:14, 10:14].mean() > 0.5 and dissimilarity[24:, 24:].max() < 1e-4
    assert ssim_map(smeared, images).shape == (1, 3, 22, 22), "without same_size: where the window fits"
