"""Stage denoise: reconstruct noisy validation images; PSNR and SSIM before and after, whether the
judge still recognises them, and figures."""

import numpy as np
import torch

from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from aepipe.denoising import denoising_report, headline, levels
from aepipe.devices import resolve_device, to_numpy_images, to_tensor
from aepipe.figures.plots import denoising_curves, denoising_grid, save
from aepipe.model.autoencoder import load_model
from aepipe.model.judge import NO_CLASSES, judge_images, load_judge
from aepipe.params import fit_validation_set, load_params
from aepipe.run_guard import run_guarded


def main() -> None:
    params = load_params("params.yaml")
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device, images=(params.data.channels, params.data.side))
    judge = load_judge("models/judge.pt", device)  # None for images without classes
    val = load_split("data/raw", "val", params.data.val_size)
    params = fit_validation_set(params, len(val.labels))
    clean = to_tensor(val.images, device)

    def accuracy(images: torch.Tensor) -> float | None:
        return judge_images(judge, images).accuracy(val.labels) if judge else None

    measured, images = denoising_report(
        model, clean, params.denoise.noise_std, params.seed, accuracy, params.denoise.index
    )
    report = {
        "model": measured.pop("model"),
        **({} if judge else {"judge": f"does not apply: {NO_CLASSES}"}),
        **measured,
    }
    shown = [tuple(to_numpy_images(image)[0] for image in pair) for pair in images]
    write_json("data/metrics/denoise.json", headline(report, params.denoise.noise_std))
    write_json("reports/denoise.json", report)
    draw(
        report,
        params.denoise.noise_std,
        to_numpy_images(clean[params.denoise.index, None])[0],
        shown,
        with_judge=judge is not None,
    )


def draw(
    report: dict,
    noise_std: list[float],
    clean_shown: np.ndarray,
    shown: list[tuple],
    with_judge: bool,
) -> None:
    by_level = levels(report, noise_std)
    mean_psnr = [(level["psnr_noisy_db"], level["psnr_reconstructed_db"]) for level in by_level]
    noisy_shown, denoised_shown = zip(*shown, strict=True)
    save(
        denoising_grid(
            clean_shown,
            list(noisy_shown),
            list(denoised_shown),
            noise_std,
            mean_psnr,
            report["model"],
        ),
        "plots/denoising.png",
    )
    clean = report["clean"]
    accuracies = [
        (clean["judge_accuracy"], clean["judge_accuracy_reconstructed"]),
        *(
            (level["judge_accuracy_noisy"], level["judge_accuracy_reconstructed"])
            for level in by_level
        ),
    ]
    save(
        denoising_curves(
            noise_std,
            mean_psnr,
            clean["psnr_reconstructed_db"],
            accuracies if with_judge else None,
            report["model"],
        ),
        "plots/denoising_curves.png",
    )


if __name__ == "__main__":
    run_guarded(main)
