"""The synthetic defects the defect segmenter learns from (DRAEM, Zavrtanik et al. 2021): a mask
says where a defect is, a source what fills it, blended in with an opacity β from 0.1 to 1.

Masks (train.defects.masks): blob, smoothed Gaussian noise above a threshold (round blobs); perlin,
Perlin noise above a threshold (DRAEM's irregular regions); lines, thin cracks of 1–2 pixels
(scratches). Sources (train.defects.sources): own, another training image of the batch; textures, an
outside image (DRAEM pastes DTD's); perlin, a Perlin-noise field; flat, one colour (DRAEM's
ablation); grid, the image itself cut into an 8×8 grid whose cells are shuffled (TransFusion, Fučka
et al. 2024). Each source is turned by 90°·k, its brightness and contrast changed and, in colour,
its channels swapped. Every image draws its mask's and its source's kind by their shares;
DEFECT_SHARE of them get one. With one kind of each, nothing is drawn for the choice: own + blob are
the draws they always were.
"""

import math
from dataclasses import dataclass

import torch

from aepipe.gaussian_blur import smoothed
from aepipe.params import DefectParams

DEFECT_SHARE = 0.5  # of each batch's images
BLOB_SIGMAS = (1, 2, 4, 8)  # pixels: the noise's blur, one drawn per batch
# the noise's lattice cells along a side, each axis drawn per batch (DRAEM: 2^0..2^5 at 256 px)
PERLIN_CELLS = (2, 4, 8)
GRID = 8  # TransFusion's cells along a side


def perlin_noise(
    count: int, side: int, cells: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """(count, side, side) gradient noise (Perlin 2002): random unit gradients on a lattice of
    cells[0] × cells[1] cells, their dot products with each pixel's offsets blended by 6t⁵ - 15t⁴ +
    10t³."""
    angles = 2 * math.pi * torch.rand(count, cells[0] + 1, cells[1] + 1, generator=generator)
    gradients = torch.stack([angles.cos(), angles.sin()], dim=-1)
    coordinates = [(torch.arange(side) + 0.5) * cell / side for cell in cells]
    (rows, row_t), (columns, column_t) = [(c.floor().long(), c - c.floor()) for c in coordinates]

    def corner(down: int, right: int) -> torch.Tensor:
        g = gradients[:, rows + down][:, :, columns + right]  # (count, side, side, 2)
        return g[..., 0] * (row_t - down)[:, None] + g[..., 1] * (column_t - right)[None, :]

    fade_rows, fade_columns = [
        (t * t * t * (t * (6 * t - 15) + 10)) for t in (row_t[:, None], column_t[None, :])
    ]
    top = torch.lerp(corner(0, 0), corner(0, 1), fade_columns)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), fade_columns)
    return torch.lerp(top, bottom, fade_rows)


def blob_masks(count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """(count, side, side) masks of random blobs: smoothed noise above 1 to 2 of its standard
    deviations."""
    sigma = BLOB_SIGMAS[int(torch.randint(len(BLOB_SIGMAS), (1,), generator=generator))]
    return _above(smoothed(torch.randn(count, side, side, generator=generator), sigma), generator)


def perlin_masks(count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """(count, side, side) masks where Perlin noise of a random lattice, turned by 90°·k, is above 1
    to 2 of its standard deviations (DRAEM's fixed threshold leaves most masks empty at 64 px)."""
    noise = perlin_noise(count, side, _lattice(generator), generator)
    return _above(
        torch.rot90(noise, int(torch.randint(4, (1,), generator=generator)), (1, 2)), generator
    )


def _above(field: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Where each (side, side) field, standardised, is above a level drawn from 1 to 2."""
    field = (field - field.mean(dim=(1, 2), keepdim=True)) / field.std(dim=(1, 2), keepdim=True)
    return (field > 1 + torch.rand(len(field), 1, 1, generator=generator)).float()


def _lattice(generator: torch.Generator) -> tuple[int, int]:
    return tuple(
        PERLIN_CELLS[int(i)] for i in torch.randint(len(PERLIN_CELLS), (2,), generator=generator)
    )


def line_masks(count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """(count, side, side) masks of one to three cracks each: a polyline of four segments from a
    random point, each turned up to ±30° from the last, 0.2 to 0.6 of the side long in all, 1 to 2
    pixels wide."""
    cracks, segments = 3, 4
    start = side * (0.1 + 0.8 * torch.rand(count, cracks, 1, 2, generator=generator))
    heading = 2 * math.pi * torch.rand(count, cracks, 1, generator=generator)
    turns = torch.cumsum(
        math.pi / 6 * (2 * torch.rand(count, cracks, segments, generator=generator) - 1), dim=-1
    )
    length = side * (0.2 + 0.4 * torch.rand(count, cracks, 1, 1, generator=generator)) / segments
    steps = length * torch.stack([(heading + turns).sin(), (heading + turns).cos()], dim=-1)
    # (count, cracks, segments + 1, 2)
    corners = torch.cat([start, start + torch.cumsum(steps, dim=2)], dim=2)
    half_width = 0.5 + 0.5 * torch.rand(count, cracks, 1, generator=generator)
    drawn = torch.arange(cracks) < torch.randint(1, cracks + 1, (count, 1), generator=generator)
    # Points every half pixel or closer along each segment; a pixel is in the crack where its centre
    # lies within the half width of one (the points' own pixel and its eight neighbours are the
    # candidates).
    along = torch.linspace(0, 1, math.ceil(2 * 0.6 * side / segments) + 2)[:, None]
    points = (
        corners[:, :, :-1, None] + along * (corners[:, :, 1:, None] - corners[:, :, :-1, None])
    ).flatten(2, 3)
    mask = torch.zeros(count * side * side)
    image = torch.arange(count)[:, None, None]
    for offset in torch.cartesian_prod(torch.arange(-1, 2), torch.arange(-1, 2)):
        pixel = points.floor() + offset
        inside = (
            ((pixel + 0.5 - points).norm(dim=-1) <= half_width)
            & drawn[..., None]
            & ((pixel >= 0) & (pixel < side)).all(dim=-1)
        )
        index = (image * side + pixel[..., 0].long()) * side + pixel[..., 1].long()
        mask[index[inside]] = 1.0
    return mask.reshape(count, side, side)


MASKS = {"blob": blob_masks, "perlin": perlin_masks, "lines": line_masks}


def turned(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The images turned by one multiple of 90°."""
    return torch.rot90(images, int(torch.randint(4, (1,), generator=generator)), (2, 3))


def own_images(
    images: torch.Tensor, generator: torch.Generator, textures: torch.Tensor | None
) -> torch.Tensor:
    return turned(images[torch.randperm(len(images), generator=generator)], generator)


def outside_textures(
    images: torch.Tensor, generator: torch.Generator, textures: torch.Tensor | None
) -> torch.Tensor:
    if textures is None:
        raise ValueError("train.defects.sources.textures needs the outside textures")
    return turned(
        textures[torch.randint(len(textures), (len(images),), generator=generator)], generator
    )


def perlin_fields(
    images: torch.Tensor, generator: torch.Generator, textures: torch.Tensor | None
) -> torch.Tensor:
    """Perlin noise of a random lattice in each channel, stretched to [0, 1]."""
    count, channels, side = images.shape[0], images.shape[1], images.shape[-1]
    noise = perlin_noise(count * channels, side, _lattice(generator), generator).reshape(
        count, channels, side, side
    )
    low, high = noise.amin(dim=(2, 3), keepdim=True), noise.amax(dim=(2, 3), keepdim=True)
    return (noise - low) / (high - low).clamp(min=1e-6)


def flat_colours(
    images: torch.Tensor, generator: torch.Generator, textures: torch.Tensor | None
) -> torch.Tensor:
    return torch.rand(*images.shape[:2], 1, 1, generator=generator).expand_as(images)


def shuffled_grids(
    images: torch.Tensor, generator: torch.Generator, textures: torch.Tensor | None
) -> torch.Tensor:
    """Each image turned, cut into GRID × GRID cells (fewer where the side does not divide), the
    cells shuffled."""
    count, channels, side = images.shape[0], images.shape[1], images.shape[-1]
    grid = max(g for g in range(1, GRID + 1) if side % g == 0)
    cell = side // grid
    cells = (
        turned(images, generator)
        .reshape(count, channels, grid, cell, grid, cell)
        .permute(0, 2, 4, 1, 3, 5)
    )
    cells = cells.reshape(count, grid * grid, channels, cell, cell)
    order = torch.argsort(torch.rand(count, grid * grid, generator=generator), dim=1)
    cells = cells[torch.arange(count)[:, None], order].reshape(
        count, grid, grid, channels, cell, cell
    )
    return cells.permute(0, 3, 1, 4, 2, 5).reshape(images.shape)


SOURCES = {
    "own": own_images,
    "textures": outside_textures,
    "perlin": perlin_fields,
    "flat": flat_colours,
    "grid": shuffled_grids,
}


def jittered(sources: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness and contrast each by a factor in [0.5, 1.5], the colour channels swapped."""
    count = len(sources)
    brightness, contrast = 0.5 + torch.rand(2, count, 1, 1, 1, generator=generator)
    mean = sources.mean(dim=(1, 2, 3), keepdim=True)
    sources = (((sources - mean) * contrast + mean) * brightness).clamp(0, 1)
    return sources[:, torch.randperm(3, generator=generator)] if sources.shape[1] == 3 else sources


def _mixed(
    made: list[torch.Tensor], shares: list[float], generator: torch.Generator
) -> torch.Tensor:
    """Each image's row from one of `made`, drawn by `shares`; no draw when there is one."""
    if len(made) == 1:
        return made[0]
    pick = torch.multinomial(
        torch.tensor(shares), len(made[0]), replacement=True, generator=generator
    )
    return torch.stack(made)[pick, torch.arange(len(made[0]))]


@dataclass(frozen=True)
class DefectMaker:
    """Synthetic defects of train.defects' kinds; `textures` (T, C, H, W) floats in [0, 1] of the
    images' shape, for the textures source."""

    params: DefectParams
    textures: torch.Tensor | None = None

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A share of (N, C, H, W) float images with a defect blended in: the images, and the (N, H,
        W) masks of where the defects are (all 0 for the images left as they were)."""
        count, side = images.shape[0], images.shape[-1]
        sources = self.params.sources.positive()
        fills = _mixed(
            [SOURCES[kind](images, generator, self.textures) for kind in sources],
            list(sources.values()),
            generator,
        )
        fills = jittered(fills, generator)
        chosen = (torch.rand(count, 1, 1, generator=generator) < DEFECT_SHARE).float()
        kinds = self.params.masks.positive()
        masks = _mixed(
            [MASKS[kind](count, side, generator) for kind in kinds], list(kinds.values()), generator
        )
        masks = masks * chosen
        opacity = 0.1 + 0.9 * torch.rand(count, 1, 1, 1, generator=generator)
        return images + masks[:, None] * opacity * (fills - images), masks
