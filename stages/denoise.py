"""Stage denoise: reconstruct noisy validation images; PSNR and SSIM before and after, whether the judge
still recognises them, and figures."""

import numpy as np
import torch

from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from aepipe.devices import resolve_device, to_numpy_images, to_tensor
from guard import run_guarded
from aepipe.model.inference import reconstruct
from aepipe.model.judge import NO_CLASSES, judge_images, load_judge
from aepipe.model.autoencoder import describe_training, load_model
from aepipe.noise import add_gaussian_noise
from aepipe.params import fit_validation_set, load_params
from aepipe.figures.plots import denoising_curves, denoising_grid, save
from aepipe.similarity import psnr, ssim


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

    # The autoencoder's own reconstruction error bounds what denoising can reach.
    reconstructed = reconstruct(model, clean)
    report = {"model": describe_training(model), **({} if judge else {"judge": f"does not apply: {NO_CLASSES}"}),
              "clean": {"psnr_reconstructed_db": psnr(reconstructed, clean).mean().item(),
                        "ssim_reconstructed": ssim(reconstructed, clean).mean().item(),
                        "judge_accuracy": accuracy(clean), "judge_accuracy_reconstructed": accuracy(reconstructed)}}
    shown = []  # per noise level: the figure's noisy and reconstructed image
    for std in params.denoise.noise_std:
        noisy = add_gaussian_noise(clean, std, params.seed)
        denoised = reconstruct(model, noisy)
        report[level_key(std)] = {
            "psnr_noisy_db": psnr(noisy, clean).mean().item(), "psnr_reconstructed_db": psnr(denoised, clean).mean().item(),
            "ssim_noisy": ssim(noisy, clean).mean().item(), "ssim_reconstructed": ssim(denoised, clean).mean().item(),
            "judge_accuracy_noisy": accuracy(noisy), "judge_accuracy_reconstructed": accuracy(denoised)}
        shown.append(tuple(to_numpy_images(images[params.denoise.index, None])[0] for images in (noisy, denoised)))
    write_json("data/metrics/denoise.json", headline(report, params.denoise.noise_std))
    write_json("reports/denoise.json", report)
    draw(report, params.denoise.noise_std, to_numpy_images(clean[params.denoise.index, None])[0], shown,
         with_judge=judge is not None)


def level_key(std: float) -> str:
    """The report's key of a noise level: noise_std_0_5 for 0.5."""
    return f"noise_std_{std:g}".replace(".", "_")


def levels(report: dict, noise_std: list[float]) -> list[dict]:
    return [report[level_key(std)] for std in noise_std]


def headline(report: dict, noise_std: list[float]) -> dict:
    """What denoising gains at the heaviest noise level (a negative gain: it loses)."""
    heaviest = levels(report, noise_std)[noise_std.index(max(noise_std))]
    return {"psnr_gain": heaviest["psnr_reconstructed_db"] - heaviest["psnr_noisy_db"],
            "denoised_ssim": heaviest["ssim_reconstructed"],
            "noisy_acc": heaviest["judge_accuracy_noisy"], "denoised_acc": heaviest["judge_accuracy_reconstructed"]}


def draw(report: dict, noise_std: list[float], clean_shown: np.ndarray, shown: list[tuple], with_judge: bool) -> None:
    by_level = levels(report, noise_std)
    mean_psnr = [(level["psnr_noisy_db"], level["psnr_reconstructed_db"]) for level in by_level]
    noisy_shown, denoised_shown = zip(*shown)
    save(denoising_grid(clean_shown, list(noisy_shown), list(denoised_shown), noise_std, mean_psnr, report["model"]),
         "plots/denoising.png")
    clean = report["clean"]
    accuracies = [(clean["judge_accuracy"], clean["judge_accuracy_reconstructed"]),
                  *((level["judge_accuracy_noisy"], level["judge_accuracy_reconstructed"]) for level in by_level)]
    save(denoising_curves(noise_std, mean_psnr, clean["psnr_reconstructed_db"], accuracies if with_judge else None,
                          report["model"]), "plots/denoising_curves.png")


if __name__ == "__main__":
    run_guarded(main)
