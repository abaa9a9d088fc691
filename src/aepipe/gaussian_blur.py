"""A Gaussian blur of maps: what turns a map's single noisy pixels into faded ones and a defect into
a blob."""

import torch


def smoothed(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, H, W) maps blurred by a Gaussian of `sigma` pixels (reflected at the edges; 0: as they
    are): a defect lights up as a blob, where single noisy pixels fade."""
    if sigma == 0:
        return maps
    radius = min(int(3 * sigma + 0.5), min(maps.shape[-2:]) - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    padded = torch.nn.functional.pad(
        maps[:, None], (radius, radius, radius, radius), mode="reflect"
    )
    rows = torch.nn.functional.conv2d(padded, kernel.view(1, 1, 1, -1))
    return torch.nn.functional.conv2d(rows, kernel.view(1, 1, -1, 1))[:, 0]
