"""Scans at full resolution (data.tile): cut into overlapping tile × tile tiles, which the model
sees, and the tiles' anomaly maps stitched back into one map of the scan, averaged where tiles
overlap; the scan's score is that map's peak (aepipe.anomaly.verdicts.Scores.stitched).

Tiles start every `tile - overlap` pixels; the last of a row or column is moved back to end at the
scan's edge, so every pixel is in a tile and no padding is invented (anomalib's Tiler pads instead).
A scan smaller than one tile is refused. NumPy alone: the pipeline, `aepipe score` and
aepipe.deploy.onnx_detector all cut and stitch here."""

from dataclasses import dataclass

import numpy as np

from aepipe.errors import AepipeError


@dataclass(frozen=True)
class Tiling:
    tile: int  # side of a tile, in pixels: the model's input side
    overlap: int  # pixels shared by neighbouring tiles

    def starts(self, length: int) -> list[int]:
        """Where the tiles of a row (or column) of `length` pixels start."""
        last = length - self.tile
        starts = list(range(0, last + 1, self.tile - self.overlap))
        return starts if starts[-1] == last else [*starts, last]

    def corners(self, height: int, width: int) -> list[tuple[int, int]]:
        """(top, left) of every tile of a height × width scan, row by row."""
        return [(top, left) for top in self.starts(height) for left in self.starts(width)]

    def count(self, height: int, width: int) -> int:
        return len(self.starts(height)) * len(self.starts(width))

    def check(self, source: str, height: int, width: int) -> None:
        if min(height, width) < self.tile:
            raise AepipeError(
                f"{source}: {width}×{height} pixels is smaller than one {self.tile}×{self.tile} "
                "tile (data.tile); expected at least that on each side"
            )

    def cut(self, scan: np.ndarray) -> np.ndarray:
        """(tiles, tile, tile[, channels]) of an (H, W[, channels]) scan, in `corners` order."""
        return np.stack(
            [
                scan[top : top + self.tile, left : left + self.tile]
                for top, left in self.corners(*scan.shape[:2])
            ]
        )

    def stitch(self, tiles: np.ndarray, height: int, width: int) -> np.ndarray:
        """One height × width scan's map (float32) from its tiles' maps (or pixels), in `corners`
        order: each pixel the mean of the tiles that hold it."""
        total = np.zeros((height, width, *tiles.shape[3:]), np.float64)
        count = np.zeros((height, width), np.float64)
        for (top, left), values in zip(self.corners(height, width), tiles, strict=True):
            total[top : top + self.tile, left : left + self.tile] += values
            count[top : top + self.tile, left : left + self.tile] += 1
        return (total / count.reshape(count.shape + (1,) * (total.ndim - 2))).astype(np.float32)

    def stitch_all(self, tiles: np.ndarray, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
        """Each scan's stitched map, from the tiles of all the scans (of these (height, width)s) in
        order."""
        ends = np.cumsum([self.count(*size) for size in sizes])
        if len(tiles) != (ends[-1] if len(ends) else 0):
            raise ValueError(
                f"{len(tiles)} tiles for scans that have {ends[-1] if len(ends) else 0}"
            )
        return [
            self.stitch(tiles[end - self.count(*size) : end], *size)
            for size, end in zip(sizes, ends, strict=True)
        ]

    def scan_of_each_tile(self, sizes: list[tuple[int, int]]) -> np.ndarray:
        """(tiles,) the index of the scan each tile was cut from."""
        return np.repeat(np.arange(len(sizes)), [self.count(*size) for size in sizes])

    def scan_means(self, values: np.ndarray, sizes: list[tuple[int, int]]) -> np.ndarray:
        """(scans, ...) float64: each scan's mean of its tiles' `values` ((tiles, ...), in
        order)."""
        owner = self.scan_of_each_tile(sizes)
        sums = np.zeros((len(sizes), *np.shape(values)[1:]), np.float64)
        np.add.at(sums, owner, values)
        tiles = np.bincount(owner, minlength=len(sizes))
        return sums / tiles.reshape(-1, *[1] * (sums.ndim - 1))
