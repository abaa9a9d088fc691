"""Stage sample: new images decoded from a distribution fitted to the training latents, and the
judge's view of them: how sure it is, which classes they cover, and how far they are from real
images (Fréchet distance of its features), beside the same distance for reconstructions and for real
images."""

import numpy as np
import torch

from aepipe.atomic import atomic_path, write_json
from aepipe.data.dataset import load_classes, load_split
from aepipe.devices import resolve_device, to_numpy_images, to_pixels
from aepipe.figures.plots import samples_grid, save
from aepipe.latent.sampling import class_means, coverage, frechet_distances, sample_latents
from aepipe.model.autoencoder import load_model
from aepipe.model.inference import decode, reconstruct
from aepipe.model.judge import NO_CLASSES, judge_images, load_judge
from aepipe.params import load_params, resolve_auto
from aepipe.run_guard import run_guarded

SHOWN = 100  # samples in the figure
METRICS = ["fd_samples", "fd_recon", "fd_real", "sample_conf", "sample_min_share", "recon_acc"]


def main() -> None:
    params = load_params("params.yaml")
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device, images=(params.data.channels, params.data.side))
    judge = load_judge("models/judge.pt", device)
    classes = load_classes("data/raw")
    normal_classes = resolve_auto(params, classes.inspection, classes.labelled).data.normal_classes
    drawn, samples, prototypes, prototype_names = draw(params, model, classes, normal_classes)
    shown = (to_numpy_images(prototypes), prototype_names, to_numpy_images(samples[:SHOWN]))
    pixels = (to_numpy_images(samples) * 255).round().astype(np.uint8)
    if judge is None:
        write_unjudged(pixels, drawn, shown, classes.names)
        return
    judged, judged_prototypes = judge_images(judge, samples), judge_images(judge, prototypes)
    with atomic_path("data/samples.npz") as tmp:
        np.savez_compressed(
            tmp,
            images=pixels,
            latents=drawn,
            judge_labels=judged.labels,
            judge_confidence=judged.confidence,
        )
    prototype_verdicts = {
        name: {"judge": classes.names[label], "confidence": float(confidence)}
        for name, label, confidence in zip(
            prototype_names, judged_prototypes.labels, judged_prototypes.confidence, strict=False
        )
    }
    write_reports(params, judge, model, judged, prototype_verdicts, classes.names, normal_classes)
    verdicts = tuple(
        np.concatenate([of_prototypes, of_samples[:SHOWN]])
        for of_prototypes, of_samples in (
            (judged_prototypes.labels, judged.labels),
            (judged_prototypes.confidence, judged.confidence),
        )
    )
    save(samples_grid(*shown, verdicts, classes.names), "plots/samples.png")


def draw(params, model, classes, normal_classes: list[int]) -> tuple:
    """Latents drawn from the distribution of what the model was trained on (in one-class mode, the
    normal classes only), decoded; and each class's mean latent decoded, with its name."""
    saved = np.load("data/latents.npz")
    trained_on = np.isin(saved["train_labels"], normal_classes)
    latents, labels = saved["train_latents"][trained_on], saved["train_labels"][trained_on]
    drawn = sample_latents(
        latents,
        labels,
        params.sample.distribution,
        params.sample.count,
        params.sample.seed,
        params.sample.components,
    )
    device = next(model.parameters()).device
    prototype_labels, means = class_means(latents, labels)
    prototype_names = (
        [classes.names[label] for label in prototype_labels] if classes.labelled else ["all"]
    )
    return (
        drawn,
        decode(model, torch.from_numpy(drawn).to(device)),
        decode(model, torch.from_numpy(means).to(device)),
        prototype_names,
    )


def write_reports(
    params,
    judge,
    model,
    judged,
    prototypes: dict,
    names: list[str],
    normal_classes: list[int],
) -> None:
    """The judge's numbers: its view of the samples and of the prototypes (`prototypes`, by
    name), of the normal validation images and their reconstructions, and the Fréchet
    distances of all three to real images."""
    val = load_split("data/raw", "val", params.data.val_size).only_digits(normal_classes)
    originals = to_pixels(val.images, next(model.parameters()).device)
    real, reconstructed = (
        judge_images(judge, originals),
        judge_images(judge, reconstruct(model, originals)),
    )
    samples_report = {
        "count": len(judged.labels),
        "distribution": params.sample.distribution,
        "judge_confidence": float(judged.confidence.mean()),
        **coverage(judged.labels, names, normal_classes),
    }
    reconstructions_report = {
        "judge_accuracy": reconstructed.accuracy(val.labels),
        "judge_accuracy_originals": real.accuracy(val.labels),
        "images": len(val.labels),
    }
    distances = frechet_distances(
        real.features, reconstructed.features, judged.features, params.sample.seed
    )
    headline = [
        distances["samples"],
        distances["reconstructions"],
        distances["real"],
        samples_report["judge_confidence"],
        samples_report["smallest_normal_class_share"],
        reconstructions_report["judge_accuracy"],
    ]
    write_json("data/metrics/samples.json", dict(zip(METRICS, headline, strict=True)))
    write_json(
        "reports/samples.json",
        {
            "samples": samples_report,
            "frechet_distance": distances,
            "reconstructions": reconstructions_report,
            "prototypes": prototypes,
        },
    )


def write_unjudged(pixels: np.ndarray, drawn: np.ndarray, shown: tuple, names: list[str]) -> None:
    """The outputs for images without classes: samples and figure, no judge's numbers."""
    with atomic_path("data/samples.npz") as tmp:
        np.savez_compressed(tmp, images=pixels, latents=drawn)
    write_json("data/metrics/samples.json", dict.fromkeys(METRICS))
    write_json(
        "reports/samples.json", {"judge": f"does not apply: {NO_CLASSES}", "samples": len(drawn)}
    )
    save(samples_grid(*shown, None, names), "plots/samples.png")


if __name__ == "__main__":
    run_guarded(main)
