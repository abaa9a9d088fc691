"""The blur of an inspection set's anomaly map, chosen from its own good images (`anomaly.map_sigma`
auto): a thin scratch keeps its peak only in a map blurred little, a soft stain draws more in one
blurred more, and which matters more differs from set to set. No defect of the test images is seen:
synthetic defects of every mask kind (blobs, Perlin regions, cracks of 1–2 pixels; filled from other
images of the set, aepipe.model.synthetic_defects) are drawn into half of the calibration images,
and the blur whose map peaks separate them best (image ROC AUC) from the other half, clean, is
chosen."""

from dataclasses import dataclass

import torch

from aepipe.anomaly.detection import image_roc_auc
from aepipe.anomaly.maps import anomaly_maps
from aepipe.devices import as_floats, eval_batches
from aepipe.errors import AepipeError
from aepipe.gaussian_blur import smoothed
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.synthetic_defects import DefectMaker
from aepipe.params import DefectMasks, DefectParams, DefectSources

# pixels: the blurs tried, least first (a tie keeps the lesser)
SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
DEFECTS = DefectParams(
    sources=DefectSources(own=1.0, textures=0.0, perlin=0.0, flat=0.0, grid=0.0),
    masks=DefectMasks(blob=1.0, perlin=1.0, lines=1.0),
)
DRAWN_TOGETHER = 64  # images given defects at a time (each filled from another of them)
MAX_DRAWS = 20  # rounds of drawing: an image left without a defect in every one is left out
MIN_IMAGES = 2  # calibration images: one clean, one with a defect


@dataclass(frozen=True)
class BlurChoice:
    sigma: float  # the chosen blur
    roc_auc: dict[float, float]  # each blur tried → its image ROC AUC on the synthetic defects
    images: tuple[int, int]  # (clean, with a defect)


def choose_map_sigma(model: AutoEncoder, images: torch.Tensor, kind: str, seed: int) -> BlurChoice:
    """The blur (one of SIGMAS) of `kind` maps (aepipe.anomaly.maps) under which synthetic defects
    in half of these (N, C, H, W) good images (uint8 pixels or floats) are found best against the
    others."""
    if len(images) < MIN_IMAGES:
        raise AepipeError(
            "anomaly.map_sigma auto chooses the blur on the calibration images, and there are "
            f"{len(images)}; expected at least {MIN_IMAGES} (validation/good), or a number for "
            "anomaly.map_sigma"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator).to(images.device)
    clean, drawn_into = images[order[: len(images) // 2]], images[order[len(images) // 2 :]]
    defective = _with_defects(drawn_into, generator)
    clean_maps, defective_maps = (
        torch.cat([anomaly_maps(model, chunk, kind) for chunk in eval_batches(batch)])
        for batch in (clean, defective)
    )
    return best_blur(clean_maps, defective_maps)


def best_blur(clean_maps: torch.Tensor, defective_maps: torch.Tensor) -> BlurChoice:
    """The blur of SIGMAS under which the (N, H, W) maps of images with a defect peak above those of
    clean ones best (image ROC AUC)."""
    roc_auc = {
        sigma: image_roc_auc(
            *(
                smoothed(maps, sigma).amax(dim=(1, 2)).cpu().numpy()
                for maps in (clean_maps, defective_maps)
            )
        )
        for sigma in SIGMAS
    }
    return BlurChoice(
        max(roc_auc, key=roc_auc.get), roc_auc, (len(clean_maps), len(defective_maps))
    )


def _with_defects(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image with a defect of DEFECTS (drawn on the CPU: one seed, the same defects on any
    device), as floats. The maker leaves about half of a batch as it was: those are drawn again."""
    maker, floats = DefectMaker(DEFECTS), as_floats(images).cpu()
    given, done = floats.clone(), torch.zeros(len(floats), dtype=torch.bool)
    for _ in range(MAX_DRAWS):
        for chunk in torch.arange(len(floats)).split(DRAWN_TOGETHER):
            defective, masks = maker(floats[chunk], generator)
            new = (masks.flatten(1).amax(dim=1) > 0) & ~done[chunk]
            given[chunk[new]], done[chunk[new]] = defective[new], True
        if done.all():
            break
    return given[done].to(images.device)


def described(choice: BlurChoice) -> dict:
    """The choice as the score stage reports it."""
    return {
        "sigma": choice.sigma,
        "clean_images": choice.images[0],
        "defective_images": choice.images[1],
        "roc_auc": {str(sigma): auc for sigma, auc in choice.roc_auc.items()},
    }
