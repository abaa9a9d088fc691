"""t-SNE maps of latent vectors (openTSNE), and a measure of how well a space keeps digits
together."""

import time
from dataclasses import dataclass

import numpy as np
import openTSNE
from sklearn.neighbors import NearestNeighbors


@dataclass
class TsneResult:
    embedding: np.ndarray  # (N, 2)
    kl_divergence: float
    seconds: float


def tsne(
    latents: np.ndarray,
    *,
    perplexity: float,
    early_exaggeration_iter: int,
    n_iter: int,
    method: str,
    ints_in_interval: float,
    neighbors: str,
    n_jobs: int,
    seed: int,
) -> TsneResult:
    """openTSNE with its PCA initialisation; `method` is the negative-gradient method (fft or bh),
    `ints_in_interval` the fft grid's spacing, `neighbors` the nearest-neighbour search."""
    started = time.perf_counter()
    embedding = openTSNE.TSNE(
        perplexity=perplexity,
        early_exaggeration_iter=early_exaggeration_iter,
        n_iter=n_iter,
        negative_gradient_method=method,
        ints_in_interval=ints_in_interval,
        neighbors=neighbors,
        n_jobs=n_jobs,
        random_state=seed,
    ).fit(np.asarray(latents, dtype=np.float64))
    return TsneResult(
        np.asarray(embedding), float(embedding.kl_divergence), time.perf_counter() - started
    )


def knn_accuracy(points: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour majority vote on the labels.

    How well a space keeps images of the same digit together; ties go to the smaller label.
    """
    _, neighbours = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
    neighbour_labels = labels[neighbours[:, 1:]]  # column 0 is the point itself
    votes = np.apply_along_axis(np.bincount, 1, neighbour_labels, minlength=int(labels.max()) + 1)
    return float(np.mean(votes.argmax(axis=1) == labels))
