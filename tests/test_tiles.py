"""Scans at full resolution (data.tile): cut into overlapping tiles, their maps stitched back."""

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import label

from aepipe.anomaly.verdicts import Scores
from aepipe.data.images import read_image
from aepipe.data.tiles import Tiling
from aepipe.errors import AepipeError


def test_tiles_cover_every_pixel_and_the_last_ends_at_the_edge():
    tiling = Tiling(32, 8)
    assert (
        tiling.starts(96) == [0, 24, 48, 64]
        and tiling.starts(32) == [0]
        and tiling.starts(80) == [0, 24, 48]
    )
    assert Tiling(32, 0).starts(64) == [0, 32] and Tiling(32, 0).starts(70) == [0, 32, 38]
    covered = np.zeros((72, 100), int)
    for top, left in tiling.corners(72, 100):
        covered[top : top + 32, left : left + 32] += 1
    assert covered.min() >= 1 and tiling.count(72, 100) == len(tiling.corners(72, 100)) == 3 * 4


def test_a_scan_cut_and_stitched_back_is_the_scan():
    scan = np.random.default_rng(0).integers(0, 256, (72, 100, 3)).astype(np.float32)
    tiling = Tiling(32, 8)
    tiles = tiling.cut(scan)
    assert tiles.shape == (12, 32, 32, 3) and np.array_equal(tiles[1], scan[:32, 24:56])
    assert np.array_equal(tiling.stitch(tiles, 72, 100), scan)


def test_overlapping_maps_are_averaged():
    # tiles at 0 and 16 of a 48-pixel row: the middle 16 columns are in both
    tiling = Tiling(32, 16)
    stitched = tiling.stitch(np.stack([np.full((32, 32), 1.0), np.full((32, 32), 3.0)]), 32, 48)
    assert (
        stitched[:, :16].tolist() == [[1.0] * 16] * 32
        and stitched[:, 32:].tolist() == [[3.0] * 16] * 32
    )
    assert np.all(stitched[:, 16:32] == 2.0)


def brightness_maps(tiles: np.ndarray) -> np.ndarray:
    """A stand-in for a model's maps: each tile's own pixels (a tile's map sees only its tile)."""
    return tiles.mean(axis=-1)


def test_a_defect_on_a_tile_border_is_one_region_where_it_is():
    scan = np.zeros((80, 96, 3), np.float32)
    scan[20:30, 20:30] = 1.0  # across the border of the tiles at 0 and 24, in both directions
    tiling = Tiling(32, 8)
    tile_maps = brightness_maps(tiling.cut(scan))
    stitched = tiling.stitch(tile_maps, 80, 96)
    regions, count = label(stitched > 0.5)
    assert count == 1 and np.array_equal(regions > 0, scan[..., 0] > 0.5)
    tiles = Scores(tile_maps.max(axis=(1, 2)), None, np.zeros(len(tile_maps), bool), tile_maps)
    scored = Scores.stitched(tiling, tiles, [(80, 96)], threshold=0.5)
    assert scored.scores.tolist() == [1.0] and scored.flagged.tolist() == [True]
    assert np.array_equal(scored.masks(0.5)[0], stitched > 0.5), (
        "the mask: the stitched map above the threshold"
    )


def test_a_scan_is_dead_only_when_every_tile_is():
    tiling = Tiling(16, 0)
    sizes = [(16, 32), (32, 16)]  # two tiles each
    owner = tiling.scan_of_each_tile(sizes)
    assert owner.tolist() == [0, 0, 1, 1]
    tiles = Scores(
        np.zeros(4),
        None,
        np.array([True, True, True, False]),
        np.zeros((4, 16, 16), np.float32),
        errors=np.array([1.0, 3.0, 2.0, 2.0]),
    )
    scored = Scores.stitched(tiling, tiles, sizes, threshold=0.5)
    assert scored.dead.tolist() == [True, False] and scored.errors.tolist() == [2.0, 2.0]
    assert scored.flagged.tolist() == [True, False], "a dead scan is flagged whatever its score"
    assert [scan_map.shape for scan_map in scored.maps] == sizes
    with pytest.raises(ValueError, match="3 tiles for scans that have 4"):
        tiling.stitch_all(np.zeros((3, 16, 16), np.float32), sizes)


def test_a_scan_smaller_than_a_tile_is_refused_naming_both(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 28), np.uint8)).save(path)  # 28 wide, 40 high
    with pytest.raises(
        AepipeError, match=r"small.png: 28×40 pixels is smaller than one 32×32 tile \(data.tile\)"
    ):
        read_image(path, 32, 1, tiled=True)
    kept = read_image(path, 28, 1, tiled=True)
    assert kept.pixels.shape == (40, 28) and kept.size == (28, 40), "kept at its own size"


def test_a_tiled_split_knows_each_scans_tiles_and_where_its_map_peaks():
    from aepipe.data.dataset import TiledScans

    tiles = TiledScans(Tiling(16, 0), {"val": [(16, 32), (32, 32), (16, 16)]})  # 2, 4 and 1 tiles
    assert tiles.first_tiles("val").tolist() == [0, 2, 6]
    assert tiles.tiles_of("val", np.array([1, 2])).tolist() == [2, 3, 4, 5, 6]
    scan_map = np.zeros((32, 32))
    scan_map[20, 5] = 1.0  # in the scan's third tile (second row, first column)
    assert tiles.peak_tile("val", 1, scan_map) == 4


def test_a_scans_error_and_latent_code_are_its_tiles_means():
    tiling, sizes = Tiling(tile=32, overlap=16), [(32, 48), (32, 32)]  # two tiles, then one
    tiles = Scores(
        scores=np.zeros(3),
        flagged=np.zeros(3, bool),
        dead=np.zeros(3, bool),
        maps=np.zeros((3, 32, 32), np.float32),
        errors=np.array([1.0, 3.0, 5.0], np.float32),
        latents=np.array([[1, 2], [3, 4], [10, 10]], np.float32),
    )
    scans = Scores.stitched(tiling, tiles, sizes, threshold=1.0)
    assert scans.errors.tolist() == [2.0, 5.0]
    assert scans.latents.tolist() == [[2.0, 3.0], [10.0, 10.0]]
    assert tiling.scan_means(np.array([4.0, 6.0, 1.0]), sizes).tolist() == [5.0, 1.0]
