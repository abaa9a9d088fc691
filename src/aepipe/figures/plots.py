"""Figures, drawn off-screen with matplotlib's Agg backend and written atomically."""

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from aepipe.atomic import atomic_path  # noqa: E402
from aepipe.figures.overlay import anomaly_overlay, as_rgb  # noqa: E402

DPI = 120


def save(figure: plt.Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(figure)


def loss_histograms(splits: dict[str, np.ndarray], threshold: float, k: float) -> plt.Figure:
    """One histogram of per-batch losses per split, with mean, median and threshold lines."""
    figure, axes = plt.subplots(
        len(splits), 1, figsize=(10, 2.8 * len(splits)), sharex=True, squeeze=False
    )
    for ax, (name, losses) in zip(axes[:, 0], splits.items(), strict=True):
        ax.hist(losses, bins=100, histtype="stepfilled", color="#4c72b0")
        ax.axvline(
            np.median(losses),
            color="red",
            linestyle="--",
            linewidth=2,
            label=f"median {np.median(losses):.5f}",
        )
        ax.axvline(
            np.mean(losses),
            color="cyan",
            linestyle="--",
            linewidth=2,
            label=f"mean {np.mean(losses):.5f}",
        )
        ax.axvline(
            threshold,
            color="black",
            linewidth=2,
            label=f"threshold (val mean + {k:g}·std) {threshold:.5f}",
        )
        ax.set_title(f"{name}: per-batch reconstruction loss ({len(losses)} batches)")
        ax.set_ylabel("batches")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1, 0].set_xlabel("MSE loss of a batch")
    figure.tight_layout()
    return figure


def _show_digit(ax: plt.Axes, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, cmap="binary", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


class Cell(NamedTuple):
    """One digit of a mosaic: where it goes, and what is written above it and drawn around it."""

    row: int
    column: int
    image: np.ndarray  # (side, side) in [0, 1], ink dark on white; or (side, side, 3) RGB
    title: str | None = None
    frame: str | None = None  # a colour for a thick frame; a thin black one otherwise


def _digit_mosaic(
    cells: Sequence[Cell],
    rows: int,
    columns: int,
    title_lines: int,
    fontsize: float,
    column_inches: float,
    row_labels: Sequence[str] = (),
) -> plt.Figure:
    """Digits in a grid drawn as one image on one Axes, titles and frames on top of it: as many Axes
    as digits took seconds to lay out (about 25 ms each)."""
    side, gap = cells[0].image.shape[0], 6  # pixels of an image, and between two
    pixels_per_inch = (side + gap) / column_inches
    title_height = (
        int(np.ceil(title_lines * fontsize * 1.25 / 72 * pixels_per_inch)) if title_lines else 0
    )
    cell_width, cell_height = side + gap, side + gap + title_height
    in_colour = any(cell.image.ndim == 3 for cell in cells)
    mosaic = (
        np.ones((rows * cell_height, columns * cell_width, 3))
        if in_colour
        else np.zeros((rows * cell_height, columns * cell_width))
    )
    figure, ax = plt.subplots(figsize=np.array(mosaic.shape[1::-1]) / pixels_per_inch)
    for cell in cells:
        top, left = (
            cell.row * cell_height + title_height + gap // 2,
            cell.column * cell_width + gap // 2,
        )
        mosaic[top : top + side, left : left + side] = (
            as_rgb(cell.image) if in_colour else cell.image
        )
        _frame_and_title(ax, cell, top, left, side, fontsize)
    for row, label in enumerate(row_labels):
        ax.text(
            -2,
            row * cell_height + title_height + (gap + side) / 2,
            label,
            ha="right",
            va="center",
            fontsize=fontsize,
        )
    ax.imshow(mosaic, cmap="binary", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    return figure


def _frame_and_title(ax, cell: Cell, top: int, left: int, side: int, fontsize: float) -> None:
    ax.add_patch(
        plt.Rectangle(
            (left - 1, top - 1),
            side + 1,
            side + 1,
            fill=False,
            linewidth=2.5 if cell.frame else 0.8,
            edgecolor=cell.frame or "black",
        )
    )
    if cell.title:
        ax.text(
            left + side / 2 - 0.5,
            top - 2.5,
            cell.title,
            ha="center",
            va="bottom",
            fontsize=fontsize,
            linespacing=1.1,
        )


def reconstruction_grid(
    images: np.ndarray, reconstructions: np.ndarray, every: int = 4, columns: int = 9
) -> plt.Figure:
    """The seed's epoch-by-epoch figure: inputs on top, then their reconstruction after every
    `every`-th epoch."""
    shown_epochs = list(range(0, len(reconstructions), every))
    if shown_epochs[-1] != len(reconstructions) - 1:
        shown_epochs.append(len(reconstructions) - 1)  # always end on the final model
    columns = min(columns, len(images))
    rows = [("input", images)] + [
        (f"epoch {epoch + 1}", reconstructions[epoch]) for epoch in shown_epochs
    ]
    cells = [
        Cell(row, column, image)
        for row, (_, row_images) in enumerate(rows)
        for column, image in enumerate(row_images[:columns])
    ]
    figure = _digit_mosaic(
        cells,
        len(rows),
        columns,
        title_lines=0,
        fontsize=9,
        column_inches=0.9,
        row_labels=[label for label, _ in rows],
    )
    figure.suptitle("Validation images and their reconstructions during training")
    figure.tight_layout()
    return figure


def loss_curves(train_loss: np.ndarray, val_loss: np.ndarray, batch_loss: np.ndarray) -> plt.Figure:
    """Per-epoch train/val loss, and the loss of every training step; `batch_loss` is (epochs,
    steps)."""
    figure, (per_epoch, per_step) = plt.subplots(1, 2, figsize=(12, 4))
    epochs = np.arange(1, len(train_loss) + 1)
    per_epoch.plot(epochs, train_loss, marker="o", label="train")
    per_epoch.plot(epochs, val_loss, marker="o", label="validation")
    per_epoch.set(title="Loss per epoch", xlabel="epoch", ylabel="MSE loss", yscale="log")
    per_epoch.xaxis.set_major_locator(MaxNLocator(integer=True))
    per_epoch.legend()
    steps_per_epoch = batch_loss.shape[1]
    fractional_epoch = np.arange(batch_loss.size) / steps_per_epoch
    per_step.plot(fractional_epoch, batch_loss.ravel(), linewidth=0.5, alpha=0.8, color="#4c72b0")
    per_step.set(
        title=f"Training loss of every batch ({steps_per_epoch} per epoch)",
        xlabel="epoch",
        ylabel="MSE loss",
        yscale="log",
    )
    figure.tight_layout()
    return figure


def tsne_map(
    embedding: np.ndarray,
    labels: np.ndarray,
    knn_accuracy: float | None,
    class_names: Sequence[str],
    label_noun: str = "digit",
) -> plt.Figure:
    figure, ax = plt.subplots(figsize=(9, 8))
    points = ax.scatter(
        embedding[:, 0],
        embedding[:, 1],
        c=labels,
        cmap="tab10",
        vmin=-0.5,
        vmax=9.5,
        s=3,
        linewidths=0,
        rasterized=True,
    )
    for label in np.unique(labels):
        centre = np.median(embedding[labels == label], axis=0)
        name = class_names[label]
        ax.annotate(
            name,
            centre,
            fontsize=16 if len(name) == 1 else 10,
            weight="bold",
            ha="center",
            va="center",
            bbox={
                "boxstyle": "circle" if len(name) == 1 else "round",
                "facecolor": "white",
                "alpha": 0.7,
                "linewidth": 0,
            },
        )
    colorbar = figure.colorbar(
        points, ax=ax, ticks=range(len(class_names)), label=label_noun, fraction=0.04
    )
    colorbar.ax.set_yticklabels(class_names)
    colorbar.ax.set_ylim(-0.5, len(class_names) - 0.5)  # only the colours of the classes there are
    accuracy = "no classes" if knn_accuracy is None else f"10-NN accuracy {knn_accuracy:.1%}"
    ax.set(
        title=f"t-SNE of the validation latents ({len(labels)} images; {accuracy})",
        xlabel="t-SNE component 1",
        ylabel="t-SNE component 2",
    )
    ax.set_aspect("equal", adjustable="datalim")
    return figure


def interpolation_strip(
    start_image: np.ndarray,
    decoded: np.ndarray,
    end_image: np.ndarray,
    start_index: int,
    end_index: int,
) -> plt.Figure:
    """Real start image, the decoded points from start to end, real end image."""
    steps = len(decoded)
    figure, axes = plt.subplots(1, steps + 2, figsize=((steps + 2) * 1.1, 1.9))
    _show_digit(axes[0], start_image, f"image {start_index}")
    for step, (ax, image) in enumerate(zip(axes[1:-1], decoded, strict=True)):
        _show_digit(ax, image, f"t = {step / (steps - 1):.2f}")
    _show_digit(axes[-1], end_image, f"image {end_index}")
    for ax in (axes[0], axes[-1]):
        for spine in ax.spines.values():
            spine.set(color="#c44e52", linewidth=2)
    figure.suptitle(
        "Decoding the straight line between two latents (outer images: the real inputs)", y=1.02
    )
    figure.tight_layout()
    return figure


def denoising_grid(
    clean: np.ndarray,
    noisy: list[np.ndarray],
    denoised: list[np.ndarray],
    noise_std: list[float],
    mean_psnr: list[tuple[float, float]],
    model: str,
) -> plt.Figure:
    """One row per noise level: clean, noisy, reconstructed; titles carry the validation-set mean
    PSNR, and the figure's title says how the `model` was trained."""
    figure, axes = plt.subplots(
        len(noise_std), 3, figsize=(6.6, 2.3 * len(noise_std)), squeeze=False
    )
    for row, std, noisy_image, denoised_image, (noisy_db, denoised_db) in zip(
        axes, noise_std, noisy, denoised, mean_psnr, strict=True
    ):
        _show_digit(row[0], clean, "clean")
        _show_digit(row[1], noisy_image, f"noise σ = {std:g}\nmean PSNR {noisy_db:.1f} dB")
        _show_digit(row[2], denoised_image, f"reconstructed\nmean PSNR {denoised_db:.1f} dB")
    figure.suptitle(
        f"Denoising by reconstruction (PSNR: mean over the validation set)\n{model}", fontsize=9
    )
    figure.tight_layout()
    return figure


def anomaly_scores(
    normal: np.ndarray,
    anomalies: dict[str, np.ndarray],
    threshold: float,
    evaluation: dict[str, dict],
    method: str,
    flagged_dead: dict[str, int],
) -> plt.Figure:
    """One panel per anomaly set: histograms of the normal and anomalous scores, and the threshold;
    `flagged_dead` counts the frames of each set flagged as dead though their score is below it."""
    names = list(anomalies) or ["(no anomaly sets)"]
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.4 * rows), squeeze=False)
    every_score = np.concatenate([normal, *anomalies.values()])
    # Reconstruction errors span decades; the combined score is already a sum of log-scale terms.
    log_scale = method == "reconstruction"
    bins = (
        np.geomspace(max(every_score.min(), 1e-6), every_score.max() * 1.01, 60)
        if log_scale
        else np.linspace(every_score.min(), every_score.max(), 60)
    )
    # One filled outline per histogram rather than a rectangle per bin: the same picture, drawn
    # 1.5× faster.
    filled = {"bins": bins, "histtype": "stepfilled", "alpha": 0.6}
    for ax, name in zip(
        axes.flat, names, strict=False
    ):  # the grid's last row may have axes to spare
        ax.hist(normal, **filled, color="#4c72b0", label=f"normal ({len(normal)})")
        if name in anomalies:
            dead = (
                f"; {flagged_dead[name]} flagged as dead frames" if flagged_dead.get(name) else ""
            )
            label = f"anomalous ({len(anomalies[name])}{dead})"
            ax.hist(anomalies[name], **filled, color="#c44e52", label=label)
            ax.set_title(
                f"{name.replace('_', ' ')}: ROC AUC {evaluation[name]['roc_auc']:.3f}", fontsize=10
            )
        ax.axvline(threshold, color="black", linewidth=1.5, label=f"threshold {threshold:.4g}")
        ax.set(
            xscale="log" if log_scale else "linear", xlabel=SCORE_LABELS[method], ylabel="images"
        )
        ax.legend(fontsize="x-small")
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    figure.suptitle("Per-image anomaly scores: normal test images vs anomalies")
    figure.tight_layout()
    return figure


SCORE_LABELS = {
    "reconstruction": "reconstruction error (MSE of the image)",
    "combined": "combined score (reconstruction + latent distance + too little ink)",
    "map_max": "map_max score (peak of the blurred anomaly map)",
}


MAP_NAMES = {
    "error": "|image − reconstruction|",
    "ssim": "1 − local SSIM of image and reconstruction",
    "segmenter": "the defect segmenter's probability",
}


def most_anomalous(
    images: np.ndarray,
    maps: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    normal: np.ndarray,
    threshold: float,
    method: str,
    class_names: Sequence[str],
    label_noun: str = "digit",
    map_kind: str = "error",
    columns: int = 8,
) -> plt.Figure:
    """The highest-scoring validation images, with class and score (held-out classes marked), each
    above its anomaly map (`map_kind`, aepipe.anomaly.maps.maps_of)."""
    # a held-out mark takes a title line of its own: class names can be long
    held_out = not np.all(normal)
    marks = ["" if is_normal else "\n(held out)" for is_normal in normal]
    cells = []
    for i, (image, error_map, score, label, mark) in enumerate(
        zip(images, maps, scores, labels, marks, strict=True)
    ):
        row, column = 2 * (i // columns), i % columns
        cells += [
            Cell(row, column, image, f"{class_names[label]}{mark}\n{score:.4g}"),
            Cell(row + 1, column, anomaly_overlay(image, error_map)),
        ]
    rows = 2 * -(-len(images) // columns)
    figure = _digit_mosaic(
        cells, rows, columns, title_lines=3 if held_out else 2, fontsize=9, column_inches=1.3
    )
    figure.suptitle(
        f"Most anomalous validation images ({label_noun}, {method} score; threshold "
        f"{threshold:.4g}),\neach above its anomaly map ({MAP_NAMES[map_kind]}: yellow to red, "
        "larger)"
    )
    figure.tight_layout()
    return figure


def _confidence_color(confidence: float) -> str:
    return "#55a868" if confidence >= 0.9 else "#dd8452" if confidence >= 0.5 else "#c44e52"


def samples_grid(
    prototypes: np.ndarray,
    prototype_names: Sequence[str],
    samples: np.ndarray,
    verdicts: tuple[np.ndarray, np.ndarray] | None,
    class_names: Sequence[str],
    columns: int = 10,
) -> plt.Figure:
    """Decoded class means on top, then samples; with a judge (`verdicts`: its labels and
    confidences of the prototypes and samples together), each image is titled and framed by what the
    judge says."""
    placed = [
        (0, i, image, f"mean of {name}")
        for i, (image, name) in enumerate(zip(prototypes, prototype_names, strict=True))
    ]
    placed += [(1 + i // columns, i % columns, image, None) for i, image in enumerate(samples)]
    cells = []
    for i, (row, column, image, title) in enumerate(placed):
        frame = None
        if verdicts:
            label, confidence = verdicts[0][i], verdicts[1][i]
            judged = f"{class_names[label]} {confidence:.2f}"
            title, frame = (
                (f"{title}\n{judged}" if title else judged),
                _confidence_color(confidence),
            )
        cells.append(Cell(row, column, image, title, frame))
    figure = _digit_mosaic(
        cells,
        1 + -(-len(samples) // columns),
        columns,
        title_lines=2 if verdicts else 1,
        fontsize=7,
        column_inches=1.0,
    )
    judged = (
        "; title and frame: the judge's class and confidence (green ≥ 0.9, orange ≥ 0.5, red below)"
        if verdicts
        else ""
    )
    figure.suptitle(
        f"Decoded class means (top row) and samples from the latent distribution{judged}",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def denoising_curves(
    noise_std: Sequence[float],
    psnr: Sequence[tuple[float, float]],
    clean_psnr: float,
    accuracy: Sequence[tuple[float, float]] | None,
    model: str,
) -> plt.Figure:
    """Mean PSNR of noisy and reconstructed images by noise level; with a judge, its accuracy on
    them, where `accuracy` starts at noise 0: the clean images and their plain reconstructions. The
    figure's title says how the `model` was trained."""
    figure, axes = plt.subplots(
        1,
        1 if accuracy is None else 2,
        figsize=(5.5 if accuracy is None else 11, 3.8),
        squeeze=False,
    )
    by_noise = axes[0, 0]
    noisy, reconstructed = zip(*psnr, strict=True)
    by_noise.plot(noise_std, noisy, marker="o", label="noisy input")
    by_noise.plot(noise_std, reconstructed, marker="o", label="reconstructed")
    by_noise.axhline(
        clean_psnr,
        color="grey",
        linestyle="--",
        label=f"clean images reconstructed ({clean_psnr:.1f} dB)",
    )
    by_noise.set(xlabel="noise σ", ylabel="mean PSNR (dB)", title="PSNR against the clean images")
    by_noise.legend(fontsize="small")
    if accuracy is not None:
        judged = axes[0, 1]
        noisy, reconstructed = zip(*accuracy, strict=True)
        levels = [0, *noise_std]
        judged.plot(levels, noisy, marker="o", label="noisy input (σ 0: the clean images)")
        judged.plot(levels, reconstructed, marker="o", label="reconstructed")
        judged.set(
            xlabel="noise σ",
            ylabel="judge's accuracy",
            title="Is it still the same class? (the judge)",
        )
        judged.yaxis.set_major_formatter(PercentFormatter(1.0))
        judged.legend(fontsize="small")
    figure.suptitle(model[0].upper() + model[1:], fontsize=10)
    figure.tight_layout()
    return figure
