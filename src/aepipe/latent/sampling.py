"""New images from the autoencoder: fit a distribution to the training latents, draw from it, and
measure how far a set of images is from real ones (the Fréchet distance between their features)."""

import numpy as np


def sample_latents(
    latents: np.ndarray,
    labels: np.ndarray,
    distribution: str,
    count: int,
    seed: int,
    components: int = 10,
) -> np.ndarray:
    """`count` latents drawn from a distribution fitted to (N, latent_dim) `latents`, in random
    order:

    - gaussian: one Gaussian with full covariance;
    - class_gaussian: one per label, each drawn as often as its label occurs in `labels`;
    - mixture: a mixture of `components` full-covariance Gaussians fitted by EM, blind to the
      labels.
    """
    if distribution == "gaussian":
        means, covariances, weights = (
            latents.mean(axis=0, keepdims=True),
            _covariance(latents)[None],
            np.ones(1),
        )
    elif distribution == "class_gaussian":
        classes, sizes = np.unique(labels, return_counts=True)
        means = np.stack([latents[labels == label].mean(axis=0) for label in classes])
        covariances = np.stack([_covariance(latents[labels == label]) for label in classes])
        weights = sizes / sizes.sum()
    elif distribution == "mixture":
        # Imported only here: scikit-learn takes a second to import, which the other distributions
        # do not need.
        from sklearn.mixture import GaussianMixture

        mixture = GaussianMixture(components, covariance_type="full", random_state=seed).fit(
            latents
        )
        means, covariances, weights = mixture.means_, mixture.covariances_, mixture.weights_
    else:
        raise ValueError(f"unknown distribution {distribution!r}")
    return _draw_mixture(means, covariances, weights, count, np.random.default_rng(seed))


def _covariance(latents: np.ndarray) -> np.ndarray:
    return np.atleast_2d(np.cov(latents, rowvar=False))


def _draw_mixture(
    means: np.ndarray,
    covariances: np.ndarray,
    weights: np.ndarray,
    count: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Each draw picks a Gaussian by its weight, then a point from it; the draws stay in random
    order."""
    picked = rng.choice(len(weights), size=count, p=weights / weights.sum())
    samples = np.empty((count, means.shape[1]))
    for component, (mean, covariance) in enumerate(zip(means, covariances, strict=True)):
        chosen = picked == component
        # Symmetric to the last bit, or numpy warns that a fitted covariance is not positive
        # semi-definite.
        samples[chosen] = rng.multivariate_normal(
            mean, (covariance + covariance.T) / 2, size=int(chosen.sum())
        )
    return samples.astype(np.float32)


def class_means(latents: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each label present and the mean latent of its images: the decoded "prototype" of the
    class."""
    classes = np.unique(labels)
    return classes, np.stack([latents[labels == label].mean(axis=0) for label in classes])


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of (N, D) features (the FID
    formula)."""
    return gaussian_frechet_distance(
        features_a.mean(axis=0),
        np.cov(features_a, rowvar=False),
        features_b.mean(axis=0),
        np.cov(features_b, rowvar=False),
    )


def gaussian_frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½).

    Tr (Σa Σb)^½ is the sum of the square roots of the eigenvalues of Σa^½ Σb Σa^½, a symmetric
    matrix: eigh on it stays real and exact where a general matrix square root of Σa Σb (singular
    when there are fewer images than features) would not.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = (
        np.atleast_2d(np.asarray(cov_a, np.float64)),
        np.atleast_2d(np.asarray(cov_b, np.float64)),
    )
    root_a = _psd_sqrt(cov_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)).sum()
    return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def class_shares(labels: np.ndarray, classes: int) -> np.ndarray:
    """The share of each class 0 … classes-1 among `labels`."""
    return np.bincount(labels, minlength=classes) / len(labels)


def normalized_entropy(shares: np.ndarray) -> float:
    """Entropy of the class shares over its maximum, log(classes): 1 when every class is equally
    common."""
    present = shares[shares > 0]
    return (
        float(-(present * np.log(present)).sum() / np.log(len(shares))) if len(shares) > 1 else 1.0
    )


def frechet_distances(
    real: np.ndarray, reconstructed: np.ndarray, samples: np.ndarray, seed: int
) -> dict:
    """Fréchet distances to a random half of the `real` images' features: of the `samples`, of the
    other half's reconstructions (`reconstructed[i]` is of `real[i]`) and of the other half itself,
    the floor: what two sets of real images differ by. Every compared set holds the same number of
    images, since the distance's bias depends on it."""
    order = np.random.default_rng(seed).permutation(len(real))
    reference, other = order[: len(order) // 2], order[len(order) // 2 :]
    other = other[: min(len(other), len(samples))]
    return {
        "samples": frechet_distance(samples[: len(other)], real[reference]),
        "reconstructions": frechet_distance(reconstructed[other], real[reference]),
        "real": frechet_distance(real[other], real[reference]),
        "reference_images": len(reference),
        "compared_images": len(other),
    }


def coverage(labels: np.ndarray, class_names: list[str], wanted: list[int]) -> dict:
    """Which classes the judge sees among samples: each class's share, and over the `wanted` classes
    (those the model was trained on) the smallest share and the normalised entropy of their
    shares."""
    shares = class_shares(labels, len(class_names))
    wanted_shares = shares[wanted]
    return {
        "class_shares": dict(zip(class_names, shares.tolist(), strict=True)),
        "smallest_normal_class_share": float(wanted_shares.min()),
        "normal_class_entropy": normalized_entropy(wanted_shares / wanted_shares.sum())
        if wanted_shares.sum()
        else 0.0,
    }
