"""The file formats a line's cameras write, read as they display: PNG, JPEG, TIFF (8 and 16 bits),
BMP and WebP; EXIF orientations; 16-bit pixels kept up to the model's floats."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from aepipe.data.folder import read_folder
from aepipe.data.images import read_image, unit_floats
from aepipe.errors import AepipeError

RNG = np.random.default_rng(0)
COLOUR = RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)
DEEP = RNG.integers(0, 65536, (40, 40, 3), dtype=np.uint16)
# Pillow's transposition that undoes each EXIF orientation's (PIL.ImageOps.exif_transpose's,
# inverted)
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize(
    "name, options",
    [
        ("part.tif", {}),
        ("part.tiff", {"compression": "tiff_lzw"}),
        ("part.bmp", {}),
        ("part.webp", {"lossless": True}),
    ],
)
def test_lossless_formats_give_the_pixels_png_gives(tmp_path, name, options):
    Image.fromarray(COLOUR).save(tmp_path / "part.png")
    Image.fromarray(COLOUR).save(tmp_path / name, **options)
    for side, channels in ((40, 3), (32, 3), (32, 1)):
        expected = read_image(tmp_path / "part.png", side, channels).pixels
        got = read_image(tmp_path / name, side, channels)
        assert got.pixels.dtype == np.uint8 and np.array_equal(got.pixels, expected), (
            name,
            side,
            channels,
        )
        assert got.size == (40, 40) and got.colour


def test_a_jpeg_is_read_too(tmp_path):
    Image.fromarray(COLOUR).save(tmp_path / "part.jpg", quality=95)
    assert read_image(tmp_path / "part.jpg", 40, 3).pixels.shape == (40, 40, 3)


def test_16_bit_tiffs_keep_their_16_bits_up_to_the_models_floats(tmp_path):
    tifffile.imwrite(tmp_path / "colour.tif", DEEP)
    # Pillow writes 16-bit greyscale itself
    Image.fromarray(DEEP[..., 0]).save(tmp_path / "grey.tif")
    grey, colour = (
        read_image(tmp_path / "grey.tif", 40, 1),
        read_image(tmp_path / "colour.tif", 40, 3),
    )
    assert (
        grey.pixels.dtype == colour.pixels.dtype == np.uint16 and not grey.colour and colour.colour
    )
    assert np.array_equal(grey.pixels, DEEP[..., 0]) and np.array_equal(colour.pixels, DEEP)
    assert np.array_equal(unit_floats(colour.pixels), DEEP.astype(np.float32) / 65535), (
        "the model sees every level"
    )
    luma = read_image(tmp_path / "colour.tif", 40, 1).pixels.astype(float)
    assert np.abs(luma - DEEP @ [0.299, 0.587, 0.114]).max() <= 0.5
    smaller = read_image(tmp_path / "grey.tif", 32, 1).pixels
    assert smaller.dtype == np.uint16 and np.any(smaller % 257), "resized in 16 bits, not through 8"
    as_grey_in_colour = read_image(tmp_path / "grey.tif", 40, 3).pixels
    assert np.array_equal(as_grey_in_colour, np.repeat(DEEP[..., :1], 3, axis=2))


def test_a_folder_dataset_of_16_bit_images_holds_them_at_8_bits(tmp_path):
    Image.fromarray(DEEP[..., 0]).save(tmp_path / "grey.tif")
    data, _ = read_folder(tmp_path, invert=False, side=40, channels=1, log=lambda _: None)
    assert data.images.dtype == np.uint8 and np.array_equal(
        data.images[0], np.round(DEEP[..., 0] / 257).astype(np.uint8)
    )


def test_a_multi_page_tiff_is_refused_naming_its_pages(tmp_path):
    pages = [
        Image.fromarray(COLOUR),
        Image.fromarray(COLOUR[::-1]),
        Image.fromarray(COLOUR[:, ::-1]),
    ]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(
        AepipeError,
        match=r"stack.tif: a file of 3 pages \(or frames\); expected one image per file",
    ):
        read_image(tmp_path / "stack.tif", 32, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_an_image_is_read_as_it_displays_whatever_its_exif_orientation(
    tmp_path, orientation, suffix
):
    upright = Image.fromarray(RNG.integers(0, 256, (32, 48, 3), dtype=np.uint8))  # 48 wide, 32 high
    stored = upright.transpose(STORED[orientation]) if STORED[orientation] is not None else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / f"turned{suffix}", exif=exif)
    upright.save(tmp_path / "upright.png")
    got, expected = (
        read_image(tmp_path / f"turned{suffix}", 32, 3),
        read_image(tmp_path / "upright.png", 32, 3),
    )
    assert np.array_equal(got.pixels, expected.pixels) and got.size == (48, 32)


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_a_16_bit_colour_tiff_is_read_as_it_displays_whatever_its_orientation(
    tmp_path, orientation
):
    """tifffile reads such a file as stored; its orientation tag turns it as Pillow turns a TIFF it
    reads."""
    upright = RNG.integers(0, 65536, (32, 48, 3), dtype=np.uint16)  # 48 wide, 32 high
    stored = np.stack(
        [
            np.asarray(Image.fromarray(upright[..., channel]).transpose(STORED[orientation]))
            for channel in range(3)
        ],
        axis=-1,
    )
    tifffile.imwrite(tmp_path / "turned.tif", stored, extratags=[(274, "H", 1, orientation, True)])
    got = read_image(tmp_path / "turned.tif", 32, 3, tiled=True)
    assert got.size == (48, 32) and np.array_equal(got.pixels, upright)
