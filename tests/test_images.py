"""Images of any side and colour: reading files into the model's shape, the model and its checkpoint
for that shape, and training on uint8 pixels converted a batch at a time."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aepipe.data.folder import read_folder
from aepipe.data.images import MAX_PIXELS, read_image
from aepipe.deploy.inputs import read_images
from aepipe.devices import to_pixels, to_tensor
from aepipe.errors import AepipeError
from aepipe.model.autoencoder import AutoEncoder, check_shape, load_model, save_model
from aepipe.model.training import LOSSES, train
from aepipe.params import ParamsError, load_params, parse_params
from aepipe.similarity import ssim
from conftest import REPO

RECIPE = load_params(REPO / "params.yaml").train.model_copy(
    update={
        "latent_dim": 4,
        "epochs": 1,
        "batch_size": 8,
        "device": "cpu",
        "segmenter": False,
        "segmenter_epochs": 1,
    }
)


def colour_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(
        np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    )


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims `width` × `height` pixels: all a decompression bomb needs to be opened."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def test_a_colour_image_keeps_its_colour_or_becomes_grey_as_asked(tmp_path):
    colour_image(40, 40).save(tmp_path / "part.png")
    rgb = read_image(tmp_path / "part.png", side=32, channels=3)
    grey = read_image(tmp_path / "part.png", side=32, channels=1)
    assert (
        rgb.pixels.shape == (32, 32, 3)
        and rgb.pixels.dtype == np.uint8
        and rgb.colour
        and rgb.size == (40, 40)
    )
    assert grey.pixels.shape == (32, 32)
    expected = np.asarray(
        Image.open(tmp_path / "part.png").convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    )
    assert np.array_equal(grey.pixels, expected)


def test_a_non_square_image_is_stretched_and_keeps_its_own_size(tmp_path):
    colour_image(64, 32).save(tmp_path / "wide.png")
    image = read_image(tmp_path / "wide.png", side=32, channels=3)
    assert image.pixels.shape == (32, 32, 3) and image.size == (64, 32)


@pytest.mark.parametrize(
    "width, height, message",
    [
        (20, 40, r"small.png: 20×40 pixels is smaller than the 32×32 the model takes"),
        (
            30_000,
            30_000,
            r"small.png: too many pixels to decompress safely|30000×30000 pixels is too large",
        ),
        (
            4100,
            4100,
            r"small.png: 4100×4100 pixels is too large \(at most " + f"{MAX_PIXELS:,}" + r"\)",
        ),
    ],
)
def test_images_too_small_or_too_large_are_refused_before_their_pixels_are_read(
    tmp_path, width, height, message
):
    path = png_header_only(tmp_path / "small.png", width, height)
    with pytest.raises(AepipeError, match=message):
        read_image(path, side=32, channels=1)


def test_a_decompression_bomb_is_refused_as_such(tmp_path):
    # 109 KB as a real file; Pillow refuses it on opening
    path = png_header_only(tmp_path / "bomb.png", 30_000, 30_000)
    with pytest.raises(AepipeError, match=r"bomb.png: too many pixels to decompress safely"):
        read_image(path, side=28, channels=1)


def test_a_mixed_folder_is_converted_and_every_conversion_is_said(tmp_path):
    colour_image(32, 32).save(tmp_path / "a.png")
    # grey, and not square
    Image.fromarray(np.full((48, 32), 90, np.uint8)).save(tmp_path / "b.png")
    (tmp_path / "notes.txt").write_text("not an image")
    notes = []
    data, _ = read_folder(tmp_path, invert=False, side=32, channels=3, log=notes.append)
    assert data.images.shape == (2, 32, 32, 3) and data.images.dtype == np.uint8
    assert np.array_equal(data.images[1], np.full((32, 32, 3), 90)), "grey in every channel"
    assert any(
        "1 of 2 images" in note and "not square" in note and "stretched" in note for note in notes
    )
    assert any("1 of 2 images" in note and "converted to colour" in note for note in notes)
    assert any("notes.txt" in note and "left out" in note for note in notes)
    notes.clear()
    data, _ = read_folder(tmp_path, invert=False, side=32, channels=1, log=notes.append)
    assert data.images.shape == (2, 32, 32) and any(
        "converted to greyscale" in note for note in notes
    )


@pytest.mark.parametrize("side, channels", [(28, 3), (32, 3), (64, 1), (20, 1)])
def test_the_model_takes_any_side_and_channels_and_its_checkpoint_records_them(
    tmp_path, side, channels
):
    model = AutoEncoder(6, side, channels).eval()
    images = torch.rand(3, channels, side, side)
    reconstructions, latents = model(images)
    assert reconstructions.shape == images.shape and latents.shape == (3, 6)
    save_model(model, tmp_path / "model.pt")
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert (checkpoint["side"], checkpoint["channels"]) == (side, channels)
    loaded = load_model(tmp_path / "model.pt")
    assert (loaded.side, loaded.channels) == (side, channels)
    assert all(
        torch.equal(tensor, model.state_dict()[name])
        for name, tensor in loaded.state_dict().items()
    )
    # channels-last kernels: last bits differ
    assert torch.allclose(loaded(images)[0], reconstructions, atol=1e-6)


def test_the_seed_shape_is_the_seed_model_and_its_checkpoint_is_unchanged(tmp_path):
    model = AutoEncoder(20)
    assert [tuple(p.shape) for p in model.encoder.parameters()] == [
        (16, 1, 3, 3),
        (16,),
        (32, 16, 3, 3),
        (32,),
        (64, 32, 7, 7),
        (64,),
    ]
    save_model(model, tmp_path / "model.pt")
    assert set(torch.load(tmp_path / "model.pt", weights_only=True)) == {
        "format",
        "latent_dim",
        "state_dict",
    }
    assert (load_model(tmp_path / "model.pt").side, load_model(tmp_path / "model.pt").channels) == (
        28,
        1,
    )


def test_images_of_another_shape_are_refused_naming_both(tmp_path):
    with pytest.raises(
        AepipeError,
        match=r"the images are 1×28×28 \(greyscale\), but the model takes 3×32×32 \(colour\)",
    ):
        check_shape(AutoEncoder(4, 32, 3), 1, 28, "the images")
    # what every stage that loads the model asks
    save_model(AutoEncoder(4, 32, 3), tmp_path / "model.pt")
    with pytest.raises(
        AepipeError,
        match=r"model.pt: the images \(data.channels, data.side\) are 1×32×32 \(greyscale\), "
        r"but the model takes 3×32×32 \(colour\)",
    ):
        load_model(tmp_path / "model.pt", images=(1, 32))
    assert load_model(tmp_path / "model.pt", images=(3, 32)).side == 32


def test_a_colour_model_refuses_a_greyscale_array_naming_both(tmp_path):
    np.save(tmp_path / "grey.npy", np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(
        AepipeError,
        match=r"grey.npy: array of shape \(2, 32, 32\); the model takes 3×32×32 \(colour\)",
    ):
        list(read_images([tmp_path / "grey.npy"], 32, 3, invert=False, strict=True))
    np.save(
        tmp_path / "first.npy", np.arange(2 * 3 * 32 * 32).reshape(2, 3, 32, 32).astype(np.uint8)
    )
    read = [
        item.pixels
        for item in read_images([tmp_path / "first.npy"], 32, 3, invert=False, strict=True)
    ]
    assert [pixels.shape for pixels in read] == [(32, 32, 3)] * 2, (
        "channels first is turned channels last"
    )
    assert np.array_equal(
        read[1][5, 7], np.load(tmp_path / "first.npy")[1, :, 5, 7] / np.float32(255)
    )


def test_training_on_uint8_pixels_gives_the_model_floats_give():
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    cpu = torch.device("cpu")
    from_floats = train(
        to_tensor(images[:32], cpu), to_tensor(images[32:], cpu), RECIPE, seed=1, log=lambda _: None
    )
    from_pixels = train(
        to_pixels(images[:32], cpu), to_pixels(images[32:], cpu), RECIPE, seed=1, log=lambda _: None
    )
    assert (from_pixels.model.side, from_pixels.model.channels) == (32, 3)
    assert from_pixels.sample_images.shape == (8, 32, 32, 3)
    for name, tensor in from_floats.model.state_dict().items():
        assert torch.equal(from_pixels.model.state_dict()[name], tensor), name
    assert from_pixels.history.val_losses == from_floats.history.val_losses


def params_with(**data) -> dict:
    from ruamel.yaml import YAML

    raw = YAML(typ="safe").load((REPO / "params.yaml").read_text())
    raw["data"].update(data)
    return raw


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"side": 64},
            r"data.side = 64, data.channels = 1: mnist images are 1×28×28; expected side 28 and "
            r"1 channel",
        ),
        ({"channels": 3}, r"data.side = 28, data.channels = 3: mnist images are 1×28×28"),
        ({"dataset": "folder", "side": 30}, r"data.side = 30: input should be a multiple of 4"),
        (
            {"dataset": "folder", "side": 8},
            r"data.side = 8: input should be greater than or equal to 16",
        ),
        ({"dataset": "folder", "channels": 2}, r"data.channels = 2: input should be 1 or 3"),
    ],
)
def test_shapes_the_dataset_cannot_have_are_refused_naming_the_key(data, message):
    with pytest.raises(ParamsError, match=message):
        parse_params(params_with(**data))


def test_a_patch_larger_than_the_images_is_refused():
    raw = params_with(dataset="folder", side=16)
    raw["anomaly"]["corruptions"]["patch"] = 20
    with pytest.raises(
        ParamsError,
        match=r"anomaly.corruptions.patch = 20: larger than the images; expected at most data.side "
        r"= 16",
    ):
        parse_params(raw)
    raw["anomaly"]["corruptions"]["patch"] = 16
    assert parse_params(raw).anomaly.corruptions.patch == 16


def test_the_ssim_loss_and_flips_train_another_model():
    rng = torch.Generator().manual_seed(0)
    images, other = torch.rand(4, 3, 32, 32, generator=rng), torch.rand(4, 3, 32, 32, generator=rng)
    assert LOSSES["ssim"](images, images).item() == pytest.approx(0.0, abs=1e-6)
    assert LOSSES["ssim"](other, images).item() == pytest.approx(
        1 - ssim(other, images).mean().item()
    )
    pixels = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    cpu = torch.device("cpu")
    changes = {"mse": {}, "ssim": {"loss": "ssim"}, "flips": {"flips": True}}
    runs = {
        name: train(
            to_pixels(pixels[:32], cpu),
            to_pixels(pixels[32:], cpu),
            RECIPE.model_copy(update=change),
            seed=1,
            log=lambda _: None,
        )
        for name, change in changes.items()
    }
    for name in ("ssim", "flips"):
        assert not torch.equal(
            runs["mse"].model.decoder[-2].weight, runs[name].model.decoder[-2].weight
        ), name
