"""The defect segmenter: a small U-Net that reads an image beside the autoencoder's reconstruction
of it and draws where the image is defective (DRAEM, Zavrtanik et al. 2021).
aepipe.model.segmenter_training trains it on synthetic defects; the model's checkpoint holds it
(aepipe.model.autoencoder).
"""

import torch
import torch.nn.functional as F
from torch import nn

WIDTH = 16  # channels of the top level, doubled each level down
# halvings of the image at most: a 64-pixel image's defects are seen at 8 pixels' grain
MOST_LEVELS = 3


def levels(side: int) -> int:
    """How many times the U-Net halves an image `side` pixels across: while even, at most
    MOST_LEVELS."""
    count = 0
    while side % 2 == 0 and count < MOST_LEVELS:
        side, count = side // 2, count + 1
    return count


def _block(narrow: int, wide: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(narrow, wide, 3, padding=1),
        nn.BatchNorm2d(wide),
        nn.ReLU(),
        nn.Conv2d(wide, wide, 3, padding=1),
        nn.BatchNorm2d(wide),
        nn.ReLU(),
    )


class Segmenter(nn.Module):
    """(image, reconstruction), each (N, C, H, W) → per-pixel defect logits (N, H, W)."""

    def __init__(self, channels: int, depth: int):
        super().__init__()
        self.channels, self.depth = channels, depth
        widths = [WIDTH << level for level in range(depth + 1)]
        self.down = nn.ModuleList(
            [_block(2 * channels, widths[0])]
            + [_block(narrow, wide) for narrow, wide in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.up = nn.ModuleList(
            [
                _block(wide + narrow, narrow)
                for narrow, wide in zip(widths[-2::-1], widths[:0:-1], strict=True)
            ]
        )
        self.out = nn.Conv2d(widths[0], 1, 1)

    def forward(self, images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        features = self.down[0](torch.cat([images, reconstructions], dim=1))
        skips = []
        for block in self.down[1:]:
            skips.append(features)
            features = block(F.max_pool2d(features, 2))
        for block, skip in zip(self.up, reversed(skips), strict=True):
            upsampled = F.interpolate(
                features, scale_factor=2, mode="bilinear", align_corners=False
            )
            features = block(torch.cat([upsampled, skip], dim=1))
        return self.out(features)[:, 0]

    def probabilities(self, images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        """The anomaly map: each pixel's probability of being defective, (N, H, W) in [0, 1]."""
        return torch.sigmoid(self(images, reconstructions))
