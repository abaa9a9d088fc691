"""Stage denoise: reconstruct noisy validation images; PSNR before and after, whether the judge still
recognises them, and figures."""

from aepipe.atomic import write_json
from aepipe.denoising import add_gaussian_noise, psnr
from aepipe.devices import resolve_device, to_tensor
from aepipe.errors import exit_on_error
from aepipe.judge import judge_images, load_judge
from aepipe.mnist import load_split
from aepipe.model import load_model
from aepipe.params import check_against_validation_set, load_params
from aepipe.plots import denoising_curves, denoising_grid, save
from aepipe.reconstruction import reconstruct


def main() -> None:
    params = load_params("params.yaml")
    device = resolve_device(params.train.device)
    model = load_model("models/model.pt", device)
    judge = load_judge("models/judge.pt", device)  # None for images without classes
    val = load_split("data/raw", "val", params.data.val_size)
    check_against_validation_set(params, len(val.labels))
    clean = to_tensor(val.images, device)
    index = params.denoise.index

    def accuracy(images):
        return judge_images(judge, images).accuracy(val.labels) if judge else None

    # The autoencoder's own reconstruction error bounds what denoising can reach.
    reconstructed = reconstruct(model, clean)
    metrics = {"clean": {"psnr_reconstructed_db": psnr(reconstructed, clean).mean().item(),
                         "judge_accuracy": accuracy(clean), "judge_accuracy_reconstructed": accuracy(reconstructed)}}
    noisy_shown, denoised_shown, mean_psnr, accuracies = [], [], [], [(metrics["clean"]["judge_accuracy"],
                                                                       metrics["clean"]["judge_accuracy_reconstructed"])]
    for std in params.denoise.noise_std:
        noisy = add_gaussian_noise(clean, std, params.seed)
        denoised = reconstruct(model, noisy)
        noisy_db, denoised_db = psnr(noisy, clean).mean().item(), psnr(denoised, clean).mean().item()
        accuracies.append((accuracy(noisy), accuracy(denoised)))
        metrics[f"noise_std_{std:g}".replace(".", "_")] = {
            "psnr_noisy_db": noisy_db, "psnr_reconstructed_db": denoised_db,
            "judge_accuracy_noisy": accuracies[-1][0], "judge_accuracy_reconstructed": accuracies[-1][1]}
        noisy_shown.append(noisy[index, 0].cpu().numpy())
        denoised_shown.append(denoised[index, 0].cpu().numpy())
        mean_psnr.append((noisy_db, denoised_db))
    # The headline: what denoising gains at the heaviest noise level (negative: it loses).
    heaviest = params.denoise.noise_std.index(max(params.denoise.noise_std))
    write_json("metrics/denoise.json", {"psnr_gain": mean_psnr[heaviest][1] - mean_psnr[heaviest][0],
                                        "noisy_acc": accuracies[1 + heaviest][0], "denoised_acc": accuracies[1 + heaviest][1]})
    write_json("reports/denoise.json", metrics)
    figure = denoising_grid(clean[index, 0].cpu().numpy(), noisy_shown, denoised_shown, params.denoise.noise_std, mean_psnr)
    save(figure, "plots/denoising.png")
    figure = denoising_curves(params.denoise.noise_std, mean_psnr, metrics["clean"]["psnr_reconstructed_db"],
                              accuracies if judge else None)
    save(figure, "plots/denoising_curves.png")


if __name__ == "__main__":
    exit_on_error(main)
