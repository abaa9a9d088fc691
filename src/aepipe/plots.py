"""Figures, drawn off-screen with matplotlib's Agg backend and written atomically."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from aepipe.atomic import atomic_path  # noqa: E402

DPI = 120


def save(figure: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(figure)


def loss_histograms(splits: dict[str, np.ndarray], threshold: float, k: float) -> plt.Figure:
    """One histogram of per-batch losses per split, with mean, median and threshold lines."""
    figure, axes = plt.subplots(len(splits), 1, figsize=(10, 2.8 * len(splits)), sharex=True, squeeze=False)
    for ax, (name, losses) in zip(axes[:, 0], splits.items()):
        ax.hist(losses, bins=100, color="#4c72b0")
        ax.axvline(np.median(losses), color="red", linestyle="--", linewidth=2, label=f"median {np.median(losses):.5f}")
        ax.axvline(np.mean(losses), color="cyan", linestyle="--", linewidth=2, label=f"mean {np.mean(losses):.5f}")
        ax.axvline(threshold, color="black", linewidth=2, label=f"threshold (val mean + {k:g}·std) {threshold:.5f}")
        ax.set_title(f"{name}: per-batch reconstruction loss ({len(losses)} batches)")
        ax.set_ylabel("batches")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1, 0].set_xlabel("MSE loss of a batch")
    figure.tight_layout()
    return figure
