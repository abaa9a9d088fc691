"""The anomaly scores on small data, against values worked out by hand: their fitting, their terms,
and the detector that applies them (aepipe.anomaly.detector)."""

import math

import numpy as np
import pytest
import torch

from aepipe.anomaly.corruptions import patch, patch_mask
from aepipe.anomaly.detection import calibration_roles, calibration_split, pixel_roc_auc
from aepipe.anomaly.detector import Detector
from aepipe.anomaly.maps import anomaly_maps, error_maps
from aepipe.anomaly.scores import (
    CombinedStatistics,
    FittedScore,
    ImageFeatures,
    MapSpec,
    combined_terms,
    fit_score,
    frame_contrast,
    image_features,
    squared_mahalanobis,
)
from aepipe.anomaly.verdicts import Scores
from aepipe.data.tiles import Tiling
from aepipe.gaussian_blur import smoothed
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.inference import errors_and_latents
from aepipe.similarity import ssim_map

# Two training images. Reconstruction errors 0.01 and 0.04: log-mean log 0.02, log-std log 2.
# Latents
# -1 and 1: mean 0, variance 2 (np.cov's n - 1), so both lie at squared Mahalanobis distance 1/2, a
# spread of zero (taken as 1). Ink 0.1 and 0.4: log-mean log 0.2, log-std log 2.
# Contrast 0.2 and 0.3: a frame is dead below a quarter of 0.2.
TRAINING = ImageFeatures(
    errors=np.array([0.01, 0.04]),
    latents=np.array([[-1.0], [1.0]]),
    ink=np.array([0.1, 0.4]),
    contrast=np.array([0.3, 0.2]),
)
LABELS = np.array([3, 3])


def test_the_latent_distance_is_to_the_nearest_class():
    # Class 0 around (0, 0), class 1 around (10, 0); each with variance 2/3 along both axes (np.cov:
    # n - 1).
    latents = np.array([[-1.0, 0], [1, 0], [0, -1], [0, 1], [9, 0], [11, 0], [10, -1], [10, 1]])
    training = ImageFeatures(np.full(8, 0.02), latents, np.full(8, 0.2), contrast=np.full(8, 0.3))
    fitted = fit_score("combined", training, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert np.asarray(fitted.latent_means).tolist() == [[0, 0], [10, 0]]
    # (2, 0) is 2 from class 0 (squared distance 4 / (2/3) = 6) and 8 from class 1: the nearer one
    # counts.
    assert distances(fitted, [[2.0, 0], [10, 3]]) == pytest.approx([6.0, 13.5])
    assert distances(
        fit_score("combined", training, np.zeros(8, int)), [[5.0, 0]]
    ) != pytest.approx(6.0)


def distances(fitted, latents: list[list[float]]) -> list[float]:
    statistics = CombinedStatistics.of(fitted)
    return squared_mahalanobis(
        torch.tensor(latents), statistics.means, statistics.precisions
    ).tolist()


def terms(fitted: FittedScore, errors, latents, ink) -> np.ndarray:
    as_tensors = (torch.tensor(values, dtype=torch.float64) for values in (errors, latents, ink))
    return combined_terms(*as_tensors, CombinedStatistics.of(fitted)).numpy()


def test_the_combined_score_sums_its_three_standardised_terms():
    fitted = fit_score("combined", TRAINING, LABELS)
    found = terms(fitted, [0.08, 0.02, 0.0001], [[2.0], [0.0], [1.0]], [0.0125, 0.4, 0.0])
    # error 0.08 is two doublings above 0.02; latent 2 is at squared distance 2 = 4 × 1/2; ink
    # 0.0125 is four halvings below 0.2, two beyond the margin.
    assert found[0] == pytest.approx([2.0, math.log(4), 2.0])
    # a typical error, a latent at the training mean (a finite term), more ink than usual: no ink
    # term
    assert found[1, 0] == pytest.approx(0.0) and np.isfinite(found[1, 1]) and found[1, 2] == 0.0
    # a blank image: rebuilt far better than typical (log2(0.0001 / 0.02) = -7.6 spreads), counted
    # as
    # -3 only; its ink is taken as 0.001, log2(0.001 / 0.2) = -7.64 spreads below the mean
    assert found[2, 0] == -3.0 and found[2, 2] == pytest.approx(-math.log2(0.001 / 0.2) - 2)
    # two halvings: within the margin
    assert terms(fitted, [0.02], [[1.0]], [0.0500001])[0, 2] == 0.0


def test_a_fitted_score_survives_its_json_round_trip():
    fitted = fit_score("combined", TRAINING, LABELS)
    assert FittedScore.from_dict(fitted.to_dict()) == fitted
    with pytest.raises(ValueError, match="unknown score method 'psychic'"):
        FittedScore.from_dict({**fitted.to_dict(), "method": "psychic"})


class Dimmer(AutoEncoder):
    """Rebuilds each image at 90 % of its brightness; its latent is the image's first pixel."""

    def __init__(self, side: int = 8, channels: int = 1):
        super().__init__(1, side, channels)

    def forward(self, images):
        return 0.9 * images, images.flatten(1)[:, :1]


def test_the_detector_applies_the_fitted_score_and_flags_above_the_threshold():
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    errors = (0.1 * images).square().mean(dim=(1, 2, 3))
    middle = float(errors.sort().values[2:4].mean())  # three errors above it, three below
    reconstruction = Detector(
        Dimmer(), fit_score("reconstruction", TRAINING, LABELS), threshold=middle
    )
    scored = reconstruction.score(images, with_maps=True)
    assert scored.scores == pytest.approx(
        errors.double().numpy()
    ) and scored.errors == pytest.approx(errors.numpy())
    assert scored.flagged.tolist() == (errors > middle).tolist() and not scored.dead.any()
    assert np.allclose(scored.maps, (0.1 * images).mean(dim=1).numpy()), (
        "the map: |image − reconstruction|"
    )
    fitted = fit_score("combined", TRAINING, LABELS)
    combined = Detector(Dimmer(), fitted).score(images)
    expected = terms(
        fitted,
        errors.tolist(),
        images.flatten(1)[:, :1].tolist(),
        images.mean(dim=(1, 2, 3)).tolist(),
    )
    assert combined.scores == pytest.approx(expected.sum(axis=1))
    assert not combined.flagged.any(), "without a threshold only dead frames are flagged"


def test_a_frame_far_flatter_than_every_training_image_is_dead_whatever_the_score():
    red, checkers = torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)
    red[:, 0] = 1.0
    checkers[..., ::2, ::2] = checkers[..., 1::2, 1::2] = 1.0
    assert frame_contrast(torch.cat([red, red])).tolist() == [0.0, 0.0], (
        "one flat colour: no contrast"
    )
    assert frame_contrast(checkers).tolist() == [0.5]
    frames = torch.full((4, 1, 8, 8), 0.5)
    # contrast: half of each
    frames[:, :, ::2] += torch.tensor([0.0, 0.0499, 0.0501, 0.3]).view(4, 1, 1, 1)
    frames[:, :, 1::2] -= torch.tensor([0.0, 0.0499, 0.0501, 0.3]).view(4, 1, 1, 1)
    for method in ("reconstruction", "combined", "map_max"):
        fitted = fit_score(method, TRAINING, LABELS, MapSpec("error", 1.0))
        scored = Detector(Dimmer(), fitted, threshold=1e9).score(frames)
        assert fitted.dead_below == pytest.approx(0.05) and scored.dead.tolist() == [
            True,
            True,
            False,
            False,
        ]
        assert scored.flagged.tolist() == [True, True, False, False], "flagged whatever the score"
        assert FittedScore.from_dict(fitted.to_dict()) == fitted
    # A score file from before the check knows no training contrast: it calls no frame dead.
    older = {
        key: value
        for key, value in fit_score("combined", TRAINING, LABELS).to_dict().items()
        if key != "min_contrast"
    }
    assert not Detector(Dimmer(), FittedScore.from_dict(older)).score(frames).dead.any()


def test_image_features_come_from_one_pass_of_the_model():
    torch.manual_seed(0)
    model, images = AutoEncoder(latent_dim=4).eval(), torch.rand(5, 1, 28, 28)
    features = image_features(model, images)
    errors, latents = errors_and_latents(model, images)
    assert np.array_equal(features.errors, errors.numpy()) and np.array_equal(
        features.latents, latents.numpy()
    )
    assert features.ink == pytest.approx(images.mean(dim=(1, 2, 3)).numpy())
    maps = error_maps(model, images)
    assert maps.shape == (5, 28, 28) and torch.allclose(maps.square().mean(dim=(1, 2)), errors)
    scored = Detector(model, fit_score("reconstruction", features, np.zeros(5))).score(images)
    assert np.array_equal(scored.errors, features.errors) and np.array_equal(
        scored.latents, features.latents
    )


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
    assert (
        np.flatnonzero(roles == "calibration").tolist()
        == np.flatnonzero(normal)[calibration].tolist()
    )
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
    scored = Detector(model, fitted, threshold=0.2).score(images, with_maps=True)
    blurred = smoothed(anomaly_maps(model, images, "error"), 1.0)
    assert scored.scores.tolist() == pytest.approx(blurred.amax(dim=(1, 2)).tolist())
    assert scored.scores[1] > 0.2 and scored.scores[0] == 0 and scored.errors[1] < 0.005
    assert np.array_equal(scored.maps, blurred.numpy()) and scored.flagged.tolist() == [False, True]
    masks = scored.masks(0.2)
    assert not masks[0].any() and masks[1, 11, 21] and masks[1].sum() < 25, (
        "the mask: the blurred defect"
    )
    assert FittedScore.from_dict(fitted.to_dict()) == fitted and fitted.to_dict()["maps"] == {
        "kind": "error",
        "sigma": 1.0,
    }
    assert "maps" not in fit_score("combined", TRAINING, LABELS, maps).to_dict(), (
        "other scores' files stay as they were"
    )


def test_smoothing_keeps_a_flat_map_and_spreads_a_peak():
    flat = torch.full((1, 20, 20), 0.3)
    assert torch.allclose(smoothed(flat, 2.0), flat)
    peak = torch.zeros(1, 21, 21)
    peak[0, 10, 10] = 1.0
    blurred = smoothed(peak, 2.0)
    assert (
        blurred.sum().item() == pytest.approx(1.0, abs=1e-5)
        and blurred[0, 10, 10] == blurred.max() < 0.05
    )


def test_the_ssim_map_has_the_images_size_and_sees_a_change_of_texture():
    rng = torch.Generator().manual_seed(0)
    images = torch.rand(1, 3, 32, 32, generator=rng)
    assert torch.allclose(
        ssim_map(images, images, same_size=True), torch.ones(1, 3, 32, 32), atol=1e-5
    )
    smeared = images.clone()
    smeared[..., 8:16, 8:16] = images[..., 8:16, 8:16].mean()  # same mean, texture gone
    dissimilarity = 1 - ssim_map(smeared, images, same_size=True).mean(dim=1)[0]
    assert dissimilarity[10:14, 10:14].mean() > 0.5 and dissimilarity[24:, 24:].max() < 1e-4
    assert ssim_map(smeared, images).shape == (1, 3, 22, 22), (
        "without same_size: where the window fits"
    )


def test_a_detector_of_tiles_scores_each_scan_by_the_peak_of_its_stitched_map():
    scans = torch.full((2, 1, 24, 40), 0.5)
    scans[1, 0, 14:17, 30:33] = 1.0  # a defect across tiles' borders of the second scan
    tiling = Tiling(16, 4)
    tiles = torch.from_numpy(np.concatenate([tiling.cut(scan[0].numpy()) for scan in scans]))[
        :, None
    ]
    model = Identity(16, (slice(None), slice(None)))
    fitted = fit_score(
        "map_max", image_features(model, tiles[:1]), np.zeros(1), MapSpec("error", 0.0), tiling
    )
    scored = Detector(model, fitted, threshold=0.25).score(
        tiles, with_maps=True, sizes=[(24, 40), (24, 40)]
    )
    assert scored.scores.tolist() == [0.0, 0.5] and scored.flagged.tolist() == [False, True]
    assert [scan_map.shape for scan_map in scored.maps] == [(24, 40), (24, 40)]
    assert np.flatnonzero(scored.masks(0.25)[1].any(axis=0)).tolist() == [30, 31, 32]
    assert Detector(model, fitted).score(tiles, sizes=[(24, 40), (24, 40)]).maps is None, (
        "maps only where asked"
    )


def test_batches_scores_join_in_order_latents_only_where_every_batch_has_them():
    first = Scores(
        np.array([1.0, 2.0]), np.array([False, True]), np.zeros(2, bool), latents=np.ones((2, 3))
    )
    second = Scores(np.array([3.0]), np.array([True]), np.array([True]), latents=np.zeros((1, 3)))
    joined = Scores.joined([first, second])
    assert joined.scores.tolist() == [1.0, 2.0, 3.0] and joined.dead.tolist() == [0, 0, 1]
    assert joined.latents.shape == (3, 3) and joined.latents[2].sum() == 0
    assert joined.errors is None and joined.maps is None
    unwatched = Scores(np.array([4.0]), np.array([False]), np.array([False]))
    assert Scores.joined([first, unwatched]).latents is None
