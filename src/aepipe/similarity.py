"""How alike two images are: PSNR, and SSIM (Wang et al. 2004) over the image or as a map."""

import torch
import torch.nn.functional as F

# SSIM as Wang et al. (2004) define it: an 11×11 Gaussian window of std 1.5, constants for pixels in
# [0, 1].
SSIM_WINDOW, SSIM_WINDOW_STD = 11, 1.5
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2


def psnr(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image against its reference, for pixels in [0,
    1]."""
    mse = (images - references).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(1 / mse)


def ssim(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Structural similarity of each (N, C, H, W) image to its reference, for pixels in [0, 1]: the
    mean of the SSIM map over the positions where the whole window fits, and over the channels (1
    for identical images)."""
    return ssim_map(images, references).reshape(len(images), -1).mean(dim=1)


def ssim_map(
    images: torch.Tensor, references: torch.Tensor, same_size: bool = False
) -> torch.Tensor:
    """The local structural similarity of (N, C, H, W) images to their references, per channel: at
    the positions where the whole window fits, or, `same_size`, at every pixel (the images reflected
    at their edges), as Bergmann et al. (2018) use it for an anomaly map (1 - SSIM)."""
    window = _gaussian_window(images)
    pad = SSIM_WINDOW // 2 if same_size else 0

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        channels = x.reshape(-1, 1, *x.shape[-2:])  # each channel on its own
        return F.conv2d(F.pad(channels, (pad,) * 4, mode="reflect") if pad else channels, window)

    mean_x, mean_y = local_mean(images), local_mean(references)
    var_x = local_mean(images * images) - mean_x**2
    var_y = local_mean(references * references) - mean_y**2
    covariance = local_mean(images * references) - mean_x * mean_y
    similarity = (
        (2 * mean_x * mean_y + SSIM_C1)
        * (2 * covariance + SSIM_C2)
        / ((mean_x**2 + mean_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2))
    )
    return similarity.reshape(*images.shape[:2], *similarity.shape[-2:])


def _gaussian_window(like: torch.Tensor) -> torch.Tensor:
    offsets = torch.arange(SSIM_WINDOW, device=like.device, dtype=like.dtype) - SSIM_WINDOW // 2
    weights = torch.exp(-(offsets**2) / (2 * SSIM_WINDOW_STD**2))
    weights /= weights.sum()
    return torch.outer(weights, weights)[None, None]
