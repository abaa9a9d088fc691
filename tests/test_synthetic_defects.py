"""The segmenter's synthetic defects: each source fills exactly its mask, each mask has its shape,
the outside textures are read whatever their size and colour, and the segmenter learns from every
source."""

import numpy as np
import pytest
import torch
from PIL import Image

from aepipe.anomaly.detection import pixel_roc_auc
from aepipe.anomaly.maps import anomaly_maps
from aepipe.data.images import read_image_tree
from aepipe.errors import AepipeError
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.segmenter import Segmenter, levels
from aepipe.model.segmenter_training import train_segmenter
from aepipe.model.synthetic_defects import (
    DEFECT_SHARE,
    MASKS,
    SOURCES,
    DefectMaker,
    _mixed,
    line_masks,
    perlin_noise,
    shuffled_grids,
)
from aepipe.params import DefectParams, ParamsError, load_params, parse_params
from conftest import REPO
from stage_workdir import stage_workdir, train_stage
from test_segmenter import recipe, stripes


def only(kind: str, names) -> dict[str, float]:
    return {name: float(name == kind) for name in names}


def defects(
    source: str = "own", mask: str = "blob", textures: torch.Tensor | None = None
) -> DefectMaker:
    params = DefectParams.model_validate(
        {"sources": only(source, SOURCES), "masks": only(mask, MASKS)}
    )
    return DefectMaker(params, textures)


def outside(count: int = 5, side: int = 32) -> torch.Tensor:
    """(count, 3, side, side) floats unlike the stripes: noise."""
    return torch.rand(count, 3, side, side, generator=torch.Generator().manual_seed(9))


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("source", list(SOURCES))
def test_each_source_changes_the_image_exactly_inside_each_mask(source, mask):
    images = stripes(128).float() / 255
    make = defects(source, mask, outside())
    defective, masks = make(images, torch.Generator().manual_seed(0))
    changed = (defective != images).any(dim=1)
    assert not changed[masks == 0].any(), "a pixel outside the mask is changed"
    assert changed[masks == 1].float().mean() > 0.9, "the blend changes the pixels inside the mask"
    with_defect = masks.flatten(1).any(dim=1).float().mean().item()
    assert (
        abs(with_defect - DEFECT_SHARE) < 0.15 and 0.0 <= defective.min() and defective.max() <= 1.0
    )
    again = make(images, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], defective) and torch.equal(again[1], masks), (
        "the same seed, the same defects"
    )
    other = make(images, torch.Generator().manual_seed(1))
    assert not torch.equal(other[1], masks), "another seed, other defects"


def test_lines_are_thin_cracks_and_perlin_regions_are_not():
    lines = line_masks(200, 64, torch.Generator().manual_seed(0))
    regions = MASKS["perlin"](200, 64, torch.Generator().manual_seed(0))

    # pixels whose 3×3 neighbourhood is all mask
    def share_left_by_erosion(masks: torch.Tensor) -> float:
        eroded = -torch.nn.functional.max_pool2d(-masks[:, None], 3, stride=1, padding=1)[:, 0]
        return (eroded.sum() / masks.sum()).item()

    assert share_left_by_erosion(lines) < 0.01 and share_left_by_erosion(regions) > 0.2
    length = lines.flatten(1).sum(dim=1)  # pixels ≈ length × width
    assert (length > 0).all() and 8 < length.median() < 64 * 3 * 0.6 * 2


def test_perlin_noise_is_smooth_within_its_bounds_and_varies_with_its_lattice():
    coarse = perlin_noise(50, 64, (2, 2), torch.Generator().manual_seed(0))
    fine = perlin_noise(50, 64, (8, 8), torch.Generator().manual_seed(0))
    assert coarse.abs().max() <= 2**-0.5 + 1e-6 and fine.abs().max() <= 2**-0.5 + 1e-6
    assert coarse.std() > 0.1, "not flat"
    step = lambda noise: (noise[:, 1:] - noise[:, :-1]).abs().mean()  # noqa: E731
    assert step(coarse) < step(fine) / 2, "a finer lattice changes faster"


def test_a_shuffled_grid_holds_the_images_own_pixels_in_other_places():
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    shuffled = shuffled_grids(images, torch.Generator().manual_seed(0), None)
    assert not torch.equal(shuffled, torch.rot90(images, 0, (2, 3)))
    # the same values: its cells, moved (and turned by 90°·k)
    for image, grid in zip(images, shuffled, strict=True):
        assert torch.equal(image.flatten().sort().values, grid.flatten().sort().values)


def test_a_mix_draws_each_kind_by_its_share():
    made = [torch.zeros(4000, 1), torch.ones(4000, 1)]
    picked = _mixed(made, [0.25, 0.75], torch.Generator().manual_seed(0))
    assert abs(picked.mean().item() - 0.75) < 0.03
    assert _mixed(made[:1], [1.0], torch.Generator()) is made[0], "one kind: nothing drawn"


def test_outside_textures_of_any_size_and_colour_are_read_and_a_bad_folder_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "banded").mkdir()
    Image.fromarray(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)).save(
        tmp_path / "banded" / "big.jpg"
    )
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(
        tmp_path / "small-grey.png"
    )
    Image.fromarray(rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)).save(tmp_path / "alpha.png")
    (tmp_path / "README.md").write_text("not an image")
    colour = read_image_tree(tmp_path, 32, 3)
    assert colour.shape == (3, 32, 32, 3) and colour.dtype == np.uint8
    assert read_image_tree(tmp_path, 32, 1).shape == (3, 32, 32)
    small = np.asarray(
        Image.open(tmp_path / "small-grey.png")
        .convert("L")
        .resize((32, 32), Image.Resampling.LANCZOS)
    )
    assert np.array_equal(read_image_tree(tmp_path, 32, 1)[2], small), "enlarged, not refused"

    (tmp_path / "truncated.png").write_bytes((tmp_path / "alpha.png").read_bytes()[:100])
    with pytest.raises(AepipeError, match="truncated.png: not a readable"):
        read_image_tree(tmp_path, 32, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AepipeError, match="empty: no PNG, JPEG, TIFF, BMP or WebP files"):
        read_image_tree(tmp_path / "empty", 32, 3)


def test_shares_that_are_all_zero_are_refused_naming_the_key():
    raw = load_params(REPO / "params.yaml").model_dump(by_alias=True)
    raw["train"]["defects"]["sources"] = only("none", SOURCES)
    with pytest.raises(
        ParamsError, match=r"train\.defects\.sources = .*expected at least one share above 0"
    ):
        parse_params(raw)
    raw["train"]["defects"]["sources"] = {**only("own", SOURCES), "own": -1.0}
    with pytest.raises(
        ParamsError, match=r"train\.defects\.sources\.own = -1.0: .*greater than or equal to 0"
    ):
        parse_params(raw)


@pytest.mark.parametrize("source", list(SOURCES))
def test_the_segmenter_learns_from_each_source(source):
    """Trained on a source's defects, the segmenter finds fresh ones (other images, another seed)
    better than an untrained one does."""
    torch.manual_seed(0)
    side = 16  # the smallest the model takes: a quarter of the time at 32
    model = AutoEncoder(8, side, 3)
    textures = outside(8, side)
    make = defects(source, "blob", textures)
    untrained = Segmenter(3, levels(side)).eval()
    trained = train_segmenter(
        model,
        stripes(512, side),
        recipe(6, defects=make.params),
        seed=0,
        log=lambda _: None,
        textures=(textures * 255).round().to(torch.uint8),
    )
    defective, masks = make(
        stripes(128, side, seed=2).float() / 255, torch.Generator().manual_seed(1)
    )
    pixels, truth = (defective * 255).round().to(torch.uint8), masks.numpy() > 0
    aucs = []
    for segmenter in (untrained, trained):
        model.segmenter = segmenter
        aucs.append(pixel_roc_auc(anomaly_maps(model, pixels, "segmenter").numpy(), truth))
    # measured: 0.48–0.51 untrained, 0.78–0.97 trained
    assert aucs[1] > aucs[0] + 0.2 and aucs[1] > 0.7, aucs


@pytest.mark.pipeline
def test_the_train_stage_refuses_a_texture_folder_without_images_before_it_trains(
    tmp_path, raw_dir
):
    sources = {**only("textures", SOURCES), "own": 1.0}
    workdir = stage_workdir(
        tmp_path,
        raw_dir,
        segmenter=True,
        defects={"sources": sources, "masks": only("blob", MASKS)},
    )
    (workdir / "data" / "textures").mkdir()
    (workdir / "data" / "textures" / "README.md").write_text("a placeholder")
    process = train_stage(workdir)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output
    assert (
        "data/textures: no PNG, JPEG, TIFF, BMP or WebP files" in output and "epoch" not in output
    ), output
    assert not (workdir / "models").exists() and not (workdir / ".checkpoints").exists()
