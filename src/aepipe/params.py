"""The typed schema of the pipeline's parameters, checked once before a stage does any work.

Values live in params.yaml only; the pydantic models below say what each key may hold.
`parse_params` turns the parsed YAML into frozen models or raises a ParamsError naming the key, the
value and what is allowed, so a typo or a bad value never reaches the training code.
"""

import warnings
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML, YAMLError

from aepipe.errors import AepipeError

MNIST_TRAIN_SIZE = 60_000
MNIST_VAL_SIZE = 10_000
MNIST_SIDE = 28
MIN_SIDE, MAX_SIDE = 16, 1024


class ParamsError(AepipeError):
    pass


Text = Annotated[str, Field(min_length=1)]


class Section(BaseModel):
    # strict: YAML's `true` is no number and `"10"` no integer; allow_inf_nan: `.nan` is no
    # threshold.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Mirrors(Section):
    """Base URLs of each dataset's files, tried in order after the dataset's environment
    variable."""

    mnist: list[Text] = Field(
        min_length=1, description="MNIST's mirrors, tried after $AEPIPE_MNIST_MIRROR"
    )
    fashion_mnist: list[Text] = Field(
        min_length=1,
        alias="fashion-mnist",
        description="Fashion-MNIST's, tried after $AEPIPE_FASHION_MNIST_MIRROR",
    )

    def of(self, dataset: str) -> list[str]:
        return self.model_dump(by_alias=True)[dataset]


class DownloadParams(Section):
    mirrors: Mirrors
    timeout_s: float = Field(gt=0, description="seconds each HTTP connection attempt may take")


class FolderParams(Section):
    """For data.dataset = folder: your images in data/images/."""

    val_fraction: float = Field(
        gt=0,
        lt=1,
        description="share of the images, picked at random, for validation "
        "(in the MVTec AD layout: the share of train/good that calibrates the threshold)",
    )
    seed: int = Field(ge=0, description="of that random split")
    invert: bool = Field(
        description="dark shapes on a light background: inverted, so the background is black as in "
        "MNIST"
    )


class DataParams(Section):
    dataset: Literal["mnist", "fashion-mnist", "folder"] = Field(
        description="mnist, fashion-mnist, or folder: your images in data/images/ "
        "(docs/reference.md#datasets)"
    )
    folder: FolderParams
    side: int = Field(
        ge=MIN_SIDE,
        le=MAX_SIDE,
        multiple_of=4,
        description=(
            "the images are side × side pixels (the model halves it at least twice); MNIST and "
            "Fashion-MNIST: 28, a folder's images are resized to it"
        ),
    )
    channels: Literal[1, 3] = Field(
        description="1 (greyscale) or 3 (colour, RGB); MNIST and Fashion-MNIST: 1"
    )
    train_size: Annotated[int, Field(ge=1, le=MNIST_TRAIN_SIZE)] | None = Field(
        description="only the first N training images (null: all); for quick experiments and tests"
    )
    val_size: Annotated[int, Field(ge=1, le=MNIST_VAL_SIZE)] | None = Field(
        description="only the first N validation images (null: all)"
    )
    normal_classes: list[Annotated[int, Field(ge=0, le=9)]] = Field(
        min_length=1,
        description=(
            "the classes the model trains and calibrates on; the validation set's other classes "
            "are the anomalies ([0]: one-class; all ten: none held out). An inspection set's "
            "normal class is good, and a folder without classes has one: for them, [0] or all "
            "ten"
        ),
    )
    tile: Annotated[int, Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=4)] | None = Field(
        description=(
            "a folder's images kept at full resolution and cut into tile × tile tiles, which the "
            "model sees (data.side must equal it); each image's map is its tiles' maps stitched, "
            "its score the map's peak (null: each image resized to data.side)"
        )
    )
    tile_overlap: int = Field(
        ge=0,
        description=(
            "pixels neighbouring tiles share (their maps are averaged there); less than data.tile"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _normal_digits_is_normal_classes(cls, values: object) -> object:
        """The name it had when every dataset was digits, still read (with a warning) so that a
        params.yaml of then runs; beside the new name, it is refused as an unknown key."""
        if (
            isinstance(values, dict)
            and "normal_digits" in values
            and "normal_classes" not in values
        ):
            warnings.warn(
                "params.yaml: data.normal_digits is called data.normal_classes now (the normal "
                "classes of any dataset); rename it, the old name will not be read for long",
                FutureWarning,
                stacklevel=2,
            )
            values = {
                ("normal_classes" if key == "normal_digits" else key): value
                for key, value in values.items()
            }
        return values

    @model_validator(mode="after")
    def _published_datasets_keep_their_shape(self) -> "DataParams":
        if self.dataset != "folder" and (self.side, self.channels) != (MNIST_SIDE, 1):
            raise _relation(
                f"data.side = {self.side}, data.channels = {self.channels}: {self.dataset} images "
                f"are 1×{MNIST_SIDE}×{MNIST_SIDE}; expected side {MNIST_SIDE} and 1 channel "
                "(other shapes are for data.dataset = folder)"
            )
        return self

    @model_validator(mode="after")
    def _tiles_fit(self) -> "DataParams":
        if self.tile is None:
            return self
        if self.dataset != "folder":
            raise _relation(
                f"data.tile = {self.tile}: {self.dataset} images are whole digits or garments; "
                "expected data.tile = null (tiles are for data.dataset = folder)"
            )
        if self.side != self.tile:
            raise _relation(
                f"data.tile = {self.tile}, data.side = {self.side}: the model sees the tiles; "
                f"expected data.side = {self.tile}"
            )
        if self.tile_overlap >= self.tile:
            raise _relation(
                f"data.tile_overlap = {self.tile_overlap}: expected less than data.tile = "
                f"{self.tile}"
            )
        if self.val_size is not None:
            raise _relation(
                f"data.val_size = {self.val_size} with data.tile = {self.tile}: a scan's tiles "
                "are scored together; expected data.val_size = null"
            )
        return self

    @field_validator("normal_classes")
    @classmethod
    def _each_class_once(cls, digits: list[int]) -> list[int]:
        if len(set(digits)) != len(digits):
            raise PydanticCustomError("repeated_class", "expected each class at most once")
        return digits


class Shares(Section):
    """Shares of the kinds below, each ≥ 0, not all 0: each image draws one kind with its share's
    probability."""

    @model_validator(mode="after")
    def _some_kind(self) -> "Shares":
        if not any(self.model_dump().values()):
            raise PydanticCustomError("all_zero", "expected at least one share above 0")
        return self

    def positive(self) -> dict[str, float]:
        """{kind: share} of the kinds drawn, in the schema's order."""
        return {kind: share for kind, share in self.model_dump().items() if share > 0}


Share = Annotated[float, Field(ge=0)]


class DefectSources(Shares):
    """What fills a synthetic defect (aepipe/model/synthetic_defects.py)."""

    own: Share = Field(description="another training image of the batch, turned by 90°·k")
    textures: Share = Field(
        description=(
            "an outside image from data/textures/ (DTD, or any photographs; of any size and "
            "colour), turned"
        )
    )
    perlin: Share = Field(description="a Perlin-noise field (procedural: needs no data)")
    flat: Share = Field(description="one flat colour")
    grid: Share = Field(
        description="the image itself cut into an 8×8 grid whose cells are shuffled (TransFusion)"
    )


class DefectMasks(Shares):
    """Where a synthetic defect is."""

    blob: Share = Field(
        description="smoothed Gaussian noise above 1–2 standard deviations: round blobs of 1–8 px"
    )
    perlin: Share = Field(
        description="Perlin noise above a threshold (DRAEM's masks): irregular regions"
    )
    lines: Share = Field(description="one to three thin cracks, 1–2 px wide: scratches")


class DefectParams(Section):
    """The defect segmenter's synthetic defects: a mask, a source blended into it with opacity
    0.1–1."""

    sources: DefectSources
    masks: DefectMasks


class TrainParams(Section):
    latent_dim: int = Field(ge=1, description="size of the bottleneck")
    epochs: int = Field(ge=1, description="passes over the training images")
    batch_size: int = Field(
        ge=1, description="images per step (the global batch, whatever train.workers)"
    )
    lr: float = Field(gt=0, description="Adam's learning rate")
    weight_decay: float = Field(ge=0, description="Adam's weight decay")
    noise_std: float = Field(
        ge=0,
        le=1,
        description=(
            "above 0: a denoising autoencoder, each training image given Gaussian noise of a std "
            "drawn from [0, noise_std] and its reconstruction compared with the clean image"
        ),
    )
    loss: Literal["mse", "ssim"] = Field(
        description=(
            "what a step minimises: mse, or ssim (1 - SSIM, Bergmann et al. 2018: structure and "
            "contrast, not only intensity)"
        )
    )
    flips: bool = Field(
        description=(
            "training images mirrored left-right and upside-down at random: for textures and "
            "parts without an up (not for digits)"
        )
    )
    photometric: float = Field(
        ge=0,
        lt=1,
        description=(
            "above 0: each training image's brightness, contrast (factors in 1 ± photometric) "
            "and gamma (its log in ± photometric) changed at random, against drift of the line's "
            "light"
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        description="auto (CUDA when present), cpu or cuda"
    )
    workers: int = Field(
        ge=1,
        description=(
            "data-parallel processes per machine (torchrun + DDP): GPUs, or CPU workers; 1: a "
            "plain process"
        ),
    )
    segmenter: Literal["auto"] | bool = Field(
        description=(
            "after the autoencoder, a defect segmenter (DRAEM) trained on synthetic defects, "
            "whose map the score reads; auto: for an inspection set (the MVTec AD layout)"
        )
    )
    segmenter_epochs: int = Field(
        ge=1, description="the segmenter's passes over the training images"
    )
    defects: DefectParams

    @model_validator(mode="after")
    def _a_share_of_the_batch_per_worker(self) -> "TrainParams":
        if self.batch_size < self.workers:
            raise _relation(
                f"train.batch_size = {self.batch_size}: expected at least train.workers = "
                f"{self.workers} (the global batch is split across the workers)"
            )
        return self


class ThresholdParams(Section):
    k: float = Field(
        ge=0,
        description="mean + k·std: the seed's per-batch threshold, and the per-image mean_std rule",
    )
    method: Literal["mean_std", "quantile", "gpd"] = Field(
        description=(
            "the per-image threshold: quantile (the calibration images' empirical q-quantile, "
            "promising 1 - q false alarms), gpd (the q-quantile of a generalised Pareto tail "
            "fitted to their highest tenth, as extreme-value thresholds do) or mean_std"
        )
    )
    q: float = Field(
        gt=0,
        le=1,
        description="for quantile and gpd: the share of normal images below the threshold",
    )

    @property
    def false_alarm_target(self) -> float | None:
        """The share of normal images the per-image threshold promises to flag: 1 - q for a
        quantile; none for mean + k·std, which promises no rate."""
        return None if self.method == "mean_std" else round(1 - self.q, 12)


class CorruptionParams(Section):
    """Synthetic anomalies made from normal validation images; null or false leaves one out."""

    gaussian_noise: Annotated[float, Field(gt=0)] | None = Field(
        description="std of added noise, pixels in [0, 1]"
    )
    rotation: Annotated[float, Field(gt=0, le=360)] | None = Field(
        description="degrees, counter-clockwise"
    )
    patch: Annotated[int, Field(ge=1)] | None = Field(
        description="side of a white square pasted at a random place (at most data.side)"
    )
    invert: bool = Field(description="1 - pixel")
    blank: bool = Field(description="all black")
    saturate: bool = Field(description="all white")


class AnomalyParams(Section):
    calibration_fraction: float = Field(
        gt=0,
        le=0.9,
        description=(
            "share of the normal validation images that sets the per-image threshold; the rest "
            "test it"
        ),
    )
    score: Literal["auto", "reconstruction", "combined", "map_max"] = Field(
        description=(
            "the per-image score (src/aepipe/anomaly/scores.py): reconstruction (the error "
            "alone), combined (+ latent distance + too little ink, fitted on the normal training "
            "images), map_max (the peak of the blurred anomaly map); auto: map_max for an "
            "inspection set, combined for every other (each the best measured there)"
        )
    )
    map: Literal["auto", "error", "ssim", "segmenter"] = Field(
        description=(
            "the anomaly map: error (|image - reconstruction|), ssim (1 - local SSIM), segmenter "
            "(its defect probability), averaged over the channels; auto: the segmenter when the "
            "model has one, else ssim for an inspection set, error for every other"
        )
    )
    map_sigma: Literal["auto"] | Annotated[float, Field(ge=0)] = Field(
        description=(
            "px: the Gaussian blur of the map where it locates defects and for map_max (0: "
            "none); auto: for an inspection set the blur (0–3) that best finds synthetic defects "
            "drawn into half of its calibration images (thin cracks and wide blobs alike; "
            "src/aepipe/anomaly/blur_choice.py), 2 for every other"
        )
    )
    corruptions: CorruptionParams


class TsneParams(Section):
    perplexity: Literal["auto"] | Annotated[float, Field(gt=0)] = Field(
        description=(
            "openTSNE's perplexity; auto: 30, or the largest that the validation set fits (a "
            "third of its images)"
        )
    )
    early_exaggeration_iter: int = Field(
        ge=0, description="iterations with exaggerated attraction (openTSNE: 250)"
    )
    n_iter: int = Field(ge=1, description="iterations after that (openTSNE: 500)")
    method: Literal["fft", "bh"] = Field(
        description="negative-gradient approximation: fft, or bh (Barnes-Hut)"
    )
    ints_in_interval: float = Field(
        gt=0, description="fft grid spacing in embedding units (openTSNE: 1)"
    )
    neighbors: Literal["exact", "annoy", "pynndescent", "auto"] = Field(
        description="nearest-neighbour search (openTSNE: auto)"
    )
    n_jobs: int = Field(ge=-1, description="threads; -1: all cores")

    @field_validator("n_jobs")
    @classmethod
    def _some_threads(cls, n_jobs: int) -> int:
        if n_jobs == 0:
            raise PydanticCustomError(
                "no_threads", "expected -1 (all cores) or a number of threads >= 1"
            )
        return n_jobs


class InterpolateParams(Section):
    start: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        description=(
            "index of the validation image the line starts at; auto: the notebook's (4121) where "
            "the set holds it, else its first"
        )
    )
    end: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        description=(
            "and ends at; auto: the notebook's (9832) where the set holds it, else its last"
        )
    )
    steps: int = Field(ge=2, description="decoded points, endpoints included")


class DenoiseParams(Section):
    index: Literal["auto"] | Annotated[int, Field(ge=0)] = Field(
        description=(
            "validation image shown in the figure; auto: the notebook's (420) where the set "
            "holds it, else its first"
        )
    )
    noise_std: list[Annotated[float, Field(gt=0)]] = Field(
        min_length=1,
        description="Gaussian noise levels (pixels in [0, 1]); PSNR is measured on every "
        "validation image",
    )


class JudgeParams(Section):
    """The classifier that judges generated, reconstructed and denoised images (independent of the
    autoencoder)."""

    epochs: int = Field(ge=1, description="the judge's passes over the training images")
    batch_size: int = Field(ge=1, description="its images per step")
    lr: float = Field(gt=0, description="peak learning rate of its one-cycle schedule")
    seed: int = Field(ge=0, description="its own: no autoencoder experiment retrains the judge")
    train_size: Annotated[int, Field(ge=1, le=MNIST_TRAIN_SIZE)] | None = Field(
        description="first N training images (null: all)"
    )


class SampleParams(Section):
    """New images decoded from a distribution fitted to the training latents."""

    distribution: Literal["gaussian", "class_gaussian", "mixture"] = Field(
        description="gaussian (one, full covariance), class_gaussian (one per class) or mixture"
    )
    components: int = Field(ge=1, description="for mixture: its Gaussians")
    count: int = Field(ge=2, description="samples decoded and judged")
    seed: int = Field(
        ge=0, description="of the samples, and of the random halves of the validation images"
    )


class Params(Section):
    seed: int = Field(
        ge=0, description="model initialisation, shuffling, noise: the same seed, the same results"
    )
    download: DownloadParams
    data: DataParams
    train: TrainParams
    threshold: ThresholdParams
    anomaly: AnomalyParams
    tsne: TsneParams
    interpolate: InterpolateParams
    denoise: DenoiseParams
    judge: JudgeParams
    sample: SampleParams

    @property
    def val_images(self) -> int:
        return self.data.val_size or MNIST_VAL_SIZE

    @model_validator(mode="after")
    def _patch_fits_the_image(self) -> "Params":
        patch = self.anomaly.corruptions.patch
        if patch is not None and patch > self.data.side:
            raise _relation(
                f"anomaly.corruptions.patch = {patch}: larger than the images; expected at most "
                f"data.side = {self.data.side}"
            )
        return self

    @model_validator(mode="after")
    def _a_segmenter_to_read(self) -> "Params":
        if self.anomaly.map == "segmenter" and self.train.segmenter is False:
            raise _relation(
                "anomaly.map = segmenter, but train.segmenter = false trains none; expected "
                "train.segmenter true or auto, or anomaly.map auto, error or ssim"
            )
        return self

    @model_validator(mode="after")
    def _a_tiled_scan_scores_its_peak(self) -> "Params":
        if self.data.tile is not None and self.anomaly.score not in ("auto", "map_max"):
            raise _relation(
                f"anomaly.score = {self.anomaly.score} with data.tile = {self.data.tile}: a "
                "scan's score is the peak of its stitched map; expected anomaly.score auto or "
                "map_max"
            )
        return self

    @model_validator(mode="after")
    def _fit_the_validation_set(self) -> "Params":
        try:
            fit_validation_set(self, self.val_images)
        except ParamsError as error:
            raise _relation(str(error)) from None
        return self


# What `auto` means for anomaly.score and anomaly.map: {inspection set: ..., any other dataset:
# ...}, each the best measured there (docs/results.md); a trained segmenter's map comes before both.
AUTO_SCORE = {True: "map_max", False: "combined"}
AUTO_MAP = {True: "ssim", False: "error"}
# anomaly.map_sigma's auto for an inspection set is chosen by the score stage from the trained model
# and the calibration images (aepipe.anomaly.blur_choice); for any other dataset it is this.
AUTO_SIGMA = 2.0


def resolve_auto(params: Params, inspection: bool, labelled: bool = True) -> Params:
    """`params` with every dataset-dependent `auto` resolved (train.segmenter, anomaly.score,
    anomaly.map, anomaly.map_sigma) for an inspection set or another dataset: the one place these
    rules live. An inspection set's anomaly.map_sigma auto stays auto: its blur is chosen from the
    trained model. An inspection set's normal class is good, and a set without classes has one:
    data.normal_classes [0]."""
    segmenter = inspection if params.train.segmenter == "auto" else params.train.segmenter
    anomaly = params.anomaly
    tiled = params.data.tile is not None  # a scan's score is its stitched map's peak
    score = AUTO_SCORE[inspection or tiled] if anomaly.score == "auto" else anomaly.score
    chosen_map = (
        ("segmenter" if segmenter else AUTO_MAP[inspection])
        if anomaly.map == "auto"
        else anomaly.map
    )
    sigma = AUTO_SIGMA if anomaly.map_sigma == "auto" and not inspection else anomaly.map_sigma
    data = (
        params.data.model_copy(update={"normal_classes": [0]})
        if inspection or not labelled
        else params.data
    )
    return params.model_copy(
        update={
            "data": data,
            "train": params.train.model_copy(update={"segmenter": segmenter}),
            "anomaly": anomaly.model_copy(
                update={"score": score, "map": chosen_map, "map_sigma": sigma}
            ),
        }
    )


def _relation(message: str) -> PydanticCustomError:
    """A rule that ties one key to another: its message names the keys itself."""
    return PydanticCustomError("relation", "{message}", {"message": message})


def load_params(path: str | Path) -> Params:
    path = Path(path)
    try:
        # YAML 1.2, as DVC writes it: `1e-4` is a number
        raw = YAML(typ="safe").load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    try:
        return parse_params(raw)
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}") from None


def parse_params(raw: object) -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise _explain(error) from None


# What `auto` means for the figures' images: the notebook's, where the validation set holds them
# (MNIST's and Fashion-MNIST's whole test sets); else the set's first (and last) image.
NOTEBOOK_IMAGES = {"interpolate.start": 4121, "interpolate.end": 9832, "denoise.index": 420}
AUTO_PERPLEXITY = 30.0  # tsne.perplexity auto, where the validation set is large enough for it
ALL_CLASSES = list(range(10))  # data.normal_classes' default: every class normal, none held out


def fit_validation_set(params: Params, n_val: int) -> Params:
    """`params` with interpolate.start and end, denoise.index and tsne.perplexity `auto` resolved
    for a validation set of `n_val` images; a value that does not fit it is refused, naming what
    would. The stages run it on the images they load; check_params on MNIST's sizes or a folder's
    count."""

    def index(key: str, value: int | str, otherwise: int) -> int:
        if value != "auto":
            return value
        return NOTEBOOK_IMAGES[key] if NOTEBOOK_IMAGES[key] < n_val else otherwise

    most = (n_val - 1) / 3  # openTSNE needs 3·perplexity neighbours for every point
    perplexity = (
        min(AUTO_PERPLEXITY, most) if params.tsne.perplexity == "auto" else params.tsne.perplexity
    )
    fitted = params.model_copy(
        update={
            "interpolate": params.interpolate.model_copy(
                update={
                    "start": index("interpolate.start", params.interpolate.start, 0),
                    "end": index("interpolate.end", params.interpolate.end, n_val - 1),
                }
            ),
            "denoise": params.denoise.model_copy(
                update={"index": index("denoise.index", params.denoise.index, 0)}
            ),
            "tsne": params.tsne.model_copy(update={"perplexity": perplexity}),
        }
    )
    for key, value in (
        ("interpolate.start", fitted.interpolate.start),
        ("interpolate.end", fitted.interpolate.end),
        ("denoise.index", fitted.denoise.index),
    ):
        if value >= n_val:
            raise ParamsError(
                f"{key} = {value}: expected the index of a validation image, 0 to {n_val - 1}, or "
                "auto"
            )
    if perplexity > most:
        raise ParamsError(
            f"tsne.perplexity = {perplexity:g}: too large for {n_val} validation images; expected "
            f"at most {most:g}, or auto"
        )
    return fitted


def check_against_classes(
    params: Params, names: list[str], inspection: bool, labelled: bool
) -> None:
    """data.normal_classes against the dataset's classes (`names`, by label): an inspection set's
    normal class is good (label 0); a labelled set must have one of the labels asked for."""
    digits = list(params.data.normal_classes)
    if inspection and digits not in ([0], ALL_CLASSES):
        raise ParamsError(
            f"data.normal_classes = {digits}: data/images has the MVTec AD layout, whose normal "
            f"class is {names[0]} (label 0); expected [0] or the default, every class"
        )
    if labelled and not inspection and not set(digits) & set(range(len(names))):
        raise ParamsError(
            f"data.normal_classes = {digits}: no images have these labels; this dataset's are 0 to "
            f"{len(names) - 1} ({', '.join(names)})"
        )


def _explain(error: ValidationError) -> ParamsError:
    """pydantic's first error as one line naming the key: an unknown key before anything else, since
    a misspelt key also makes the right one missing."""
    problems = error.errors(include_url=False)
    problem = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
    key, where = _dotted(problem["loc"]), _dotted(problem["loc"][:-1]) or "the top level"
    if problem["type"] == "relation":
        return ParamsError(problem["msg"])
    if problem["type"] == "extra_forbidden":
        return ParamsError(
            f"{key}: unknown key; allowed in {where}: {', '.join(_keys_at(problem['loc'][:-1]))}"
        )
    if problem["type"] == "missing":
        return ParamsError(
            f"{key}: missing; every key of {where} is needed: "
            f"{', '.join(_keys_at(problem['loc'][:-1]))}"
        )
    if problem["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return ParamsError(
            f"{key or 'the top level'}: expected a mapping of keys, got {_show(problem['input'])}"
        )
    return ParamsError(
        f"{key} = {_show(problem['input'])}: {problem['msg'][0].lower()}{problem['msg'][1:]}"
    )


def _keys_at(loc) -> list[str]:
    """The keys params.yaml has in the section at `loc`."""
    section = Params
    for name in loc:
        section = next(
            field.annotation
            for key, field in section.model_fields.items()
            if (field.alias or key) == name
        )
    return [field.alias or key for key, field in section.model_fields.items()]


def _dotted(loc) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in loc).lstrip(".")


def _show(value: object) -> str:
    return (
        repr(value)
        if isinstance(value, str)
        else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
    )
