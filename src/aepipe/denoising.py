"""How well the autoencoder denoises: PSNR and SSIM of noisy images and of their reconstructions
against the clean ones, and whether a classifier (the judge) still recognises them, per noise
level."""

from collections.abc import Callable

import torch

from aepipe.model.autoencoder import AutoEncoder, describe_training
from aepipe.model.inference import reconstruct
from aepipe.noise import add_gaussian_noise
from aepipe.similarity import psnr, ssim

Accuracy = Callable[[torch.Tensor], float | None]  # the judge's accuracy on images (None: no judge)


def level_key(std: float) -> str:
    """The report's key of a noise level: noise_std_0_5 for 0.5."""
    return f"noise_std_{std:g}".replace(".", "_")


def denoising_report(
    model: AutoEncoder,
    clean: torch.Tensor,
    noise_std: list[float],
    seed: int,
    accuracy: Accuracy,
    shown: int,
) -> tuple[dict, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The measures of the clean images' reconstructions (the bound denoising can reach) and of each
    noise level's noisy images and reconstructions; with each level's noisy and denoised image
    `shown`."""
    reconstructed = reconstruct(model, clean)
    report = {
        "model": describe_training(model),
        "clean": {
            "psnr_reconstructed_db": psnr(reconstructed, clean).mean().item(),
            "ssim_reconstructed": ssim(reconstructed, clean).mean().item(),
            "judge_accuracy": accuracy(clean),
            "judge_accuracy_reconstructed": accuracy(reconstructed),
        },
    }
    images = []  # per noise level: image `shown`, noisy and denoised
    for std in noise_std:
        noisy = add_gaussian_noise(clean, std, seed)
        denoised = reconstruct(model, noisy)
        report[level_key(std)] = {
            "psnr_noisy_db": psnr(noisy, clean).mean().item(),
            "psnr_reconstructed_db": psnr(denoised, clean).mean().item(),
            "ssim_noisy": ssim(noisy, clean).mean().item(),
            "ssim_reconstructed": ssim(denoised, clean).mean().item(),
            "judge_accuracy_noisy": accuracy(noisy),
            "judge_accuracy_reconstructed": accuracy(denoised),
        }
        images.append((noisy[shown, None], denoised[shown, None]))
    return report, images


def levels(report: dict, noise_std: list[float]) -> list[dict]:
    return [report[level_key(std)] for std in noise_std]


def headline(report: dict, noise_std: list[float]) -> dict:
    """What denoising gains at the heaviest noise level (a negative gain: it loses)."""
    heaviest = levels(report, noise_std)[noise_std.index(max(noise_std))]
    return {
        "psnr_gain": heaviest["psnr_reconstructed_db"] - heaviest["psnr_noisy_db"],
        "denoised_ssim": heaviest["ssim_reconstructed"],
        "noisy_acc": heaviest["judge_accuracy_noisy"],
        "denoised_acc": heaviest["judge_accuracy_reconstructed"],
    }
