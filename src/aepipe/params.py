"""The typed schema of the pipeline's parameters, checked once before a stage does any work.

Values live in params.yaml only; the pydantic models below say what each key may hold. `parse_params`
turns the parsed YAML into frozen models or raises a ParamsError naming the key, the value and what
is allowed, so a typo or a bad value never reaches the training code.
"""

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from aepipe.errors import AepipeError

MNIST_TRAIN_SIZE = 60_000
MNIST_VAL_SIZE = 10_000


class ParamsError(AepipeError):
    pass


_FLOAT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _yaml_1_2_float(value: object) -> object:
    # PyYAML reads YAML 1.1, where `1e-4` (no dot) is a string; DVC's `-S` writes floats that way.
    if isinstance(value, str) and _FLOAT_LITERAL.fullmatch(value.strip()):
        return float(value)
    return value


# strict: YAML's `true` is no number and `"10"` no integer; allow_inf_nan: `.nan` is no threshold.
Number = Annotated[float, BeforeValidator(_yaml_1_2_float), Field(strict=True, allow_inf_nan=False)]
Text = Annotated[StrictStr, Field(min_length=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mirrors(Section):
    """Base URLs of each dataset's files, tried in order after the dataset's environment variable."""

    mnist: list[Text] = Field(min_length=1)
    fashion_mnist: list[Text] = Field(min_length=1, alias="fashion-mnist")

    def of(self, dataset: str) -> list[str]:
        return self.model_dump(by_alias=True)[dataset]


class DownloadParams(Section):
    mirrors: Mirrors
    timeout_s: Number = Field(gt=0)  # per-connection timeout for each HTTP request


class FolderParams(Section):
    """For data.dataset = folder: your images in data/images/."""

    val_fraction: Number = Field(gt=0, lt=1)  # share of the images, picked at random, for validation
    seed: StrictInt = Field(ge=0)  # of that random split
    invert: StrictBool  # dark shapes on a light background: invert, so the background is black as in MNIST


class DataParams(Section):
    dataset: Literal["mnist", "fashion-mnist", "folder"]
    folder: FolderParams
    # Use only the first N images of a split (null: all of it). For quick experiments and tests.
    train_size: Annotated[StrictInt, Field(ge=1, le=MNIST_TRAIN_SIZE)] | None
    val_size: Annotated[StrictInt, Field(ge=1, le=MNIST_VAL_SIZE)] | None
    # Classes (labels 0-9: digits, or Fashion-MNIST's classes) the model trains and calibrates on; the
    # other classes of the validation set are the anomalies (the one-class benchmark). All ten: none held out.
    normal_digits: list[Annotated[StrictInt, Field(ge=0, le=9)]] = Field(min_length=1)


class TrainParams(Section):
    latent_dim: StrictInt = Field(ge=1)
    epochs: StrictInt = Field(ge=1)
    batch_size: StrictInt = Field(ge=1)
    lr: Number = Field(gt=0)
    weight_decay: Number = Field(ge=0)
    # Above 0: a denoising autoencoder. Each training image gets Gaussian noise of a std drawn uniformly
    # from [0, noise_std] (pixels in [0, 1]); the loss compares its reconstruction with the clean image.
    noise_std: Number = Field(ge=0, le=1)
    device: Literal["auto", "cpu", "cuda"]
    # Data-parallel processes per machine (torchrun + DDP): GPUs on a GPU machine, CPU workers
    # otherwise. 1: a plain process. train.batch_size stays the global batch.
    workers: StrictInt = Field(ge=1)


class ThresholdParams(Section):
    k: Number = Field(ge=0)  # mean + k·std: the seed's per-batch rule, and the per-image mean_std rule
    method: Literal["mean_std", "quantile"]  # per-image threshold rule
    q: Number = Field(gt=0, le=1)  # quantile of normal images' scores, for method quantile


class CorruptionParams(Section):
    """Synthetic anomalies made from normal validation images; null or false leaves one out."""

    gaussian_noise: Annotated[Number, Field(gt=0)] | None  # std of added noise, pixels in [0, 1]
    rotation: Annotated[Number, Field(gt=0, le=360)] | None  # degrees, counter-clockwise
    patch: Annotated[StrictInt, Field(ge=1, le=28)] | None  # side of a white square pasted at a random place
    invert: StrictBool  # 1 - pixel
    blank: StrictBool  # all black
    saturate: StrictBool  # all white


class AnomalyParams(Section):
    # Share of the normal validation images that sets the per-image threshold; the rest test it.
    calibration_fraction: Number = Field(gt=0, le=0.9)
    # The per-image anomaly score (src/aepipe/scores.py): reconstruction error alone, or combined with
    # the latent distance and a too-little-ink term, all fitted on the normal training images.
    score: Literal["reconstruction", "combined"]
    corruptions: CorruptionParams


class TsneParams(Section):
    perplexity: Number = Field(gt=0)
    early_exaggeration_iter: StrictInt = Field(ge=0)  # iterations with exaggerated attraction (openTSNE: 250)
    n_iter: StrictInt = Field(ge=1)  # iterations after that (openTSNE: 500)
    method: Literal["fft", "bh"]  # negative-gradient approximation
    ints_in_interval: Number = Field(gt=0)  # fft grid spacing in embedding units (openTSNE: 1)
    neighbors: Literal["exact", "annoy", "pynndescent", "auto"]  # nearest-neighbour search (openTSNE: auto)
    n_jobs: StrictInt = Field(ge=-1)  # threads; -1: all cores


class InterpolateParams(Section):
    start: StrictInt = Field(ge=0)  # index of a validation image
    end: StrictInt = Field(ge=0)
    steps: StrictInt = Field(ge=2)  # decoded points, endpoints included


class DenoiseParams(Section):
    index: StrictInt = Field(ge=0)  # validation image shown in the figure
    noise_std: list[Annotated[Number, Field(gt=0)]] = Field(min_length=1)  # Gaussian noise levels (pixels in [0, 1])


class JudgeParams(Section):
    """The classifier that judges generated, reconstructed and denoised images (independent of the autoencoder)."""

    epochs: StrictInt = Field(ge=1)
    batch_size: StrictInt = Field(ge=1)
    lr: Number = Field(gt=0)  # peak learning rate of the one-cycle schedule
    seed: StrictInt = Field(ge=0)  # its own: the autoencoder's seed never retrains the judge
    train_size: Annotated[StrictInt, Field(ge=1, le=MNIST_TRAIN_SIZE)] | None  # first N training images (null: all)


class SampleParams(Section):
    """New images decoded from a distribution fitted to the training latents."""

    distribution: Literal["gaussian", "class_gaussian", "mixture"]
    components: StrictInt = Field(ge=1)  # for mixture: Gaussians in the mixture
    count: StrictInt = Field(ge=2)  # samples decoded (and judged)
    seed: StrictInt = Field(ge=0)  # of the samples, and of the random halves of the validation images


class Params(Section):
    seed: StrictInt = Field(ge=0)
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


def load_params(path: str | Path) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    try:
        return parse_params(raw)
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}") from None


def parse_params(raw: object) -> Params:
    try:
        params = Params.model_validate(raw)
    except ValidationError as error:
        raise _explain(error) from None
    _check_relations(params)
    return params


def check_against_validation_set(params: Params, n_val: int) -> None:
    """The keys that must fit the number of validation images: checked here for MNIST's sizes, and
    again by the stages on the images they load (a folder of your own has any number)."""
    for key, index in (("interpolate.start", params.interpolate.start), ("interpolate.end", params.interpolate.end),
                       ("denoise.index", params.denoise.index)):
        if index >= n_val:
            raise ParamsError(f"{key} = {index}: expected the index of a validation image, 0 to {n_val - 1}")
    most = (n_val - 1) / 3  # openTSNE needs 3·perplexity neighbours for every point
    if params.tsne.perplexity > most:
        raise ParamsError(
            f"tsne.perplexity = {params.tsne.perplexity:g}: too large for {n_val} validation images; expected at most {most:g}"
        )


def _check_relations(params: Params) -> None:
    """Rules that tie one key to another."""
    check_against_validation_set(params, params.val_images)
    if len(set(params.data.normal_digits)) != len(params.data.normal_digits):
        raise ParamsError(f"data.normal_digits = {list(params.data.normal_digits)}: expected each digit at most once")
    if params.train.batch_size < params.train.workers:
        raise ParamsError(
            f"train.batch_size = {params.train.batch_size}: expected at least train.workers = {params.train.workers} "
            "(the global batch is split across the workers)"
        )
    if params.tsne.n_jobs == 0:
        raise ParamsError("tsne.n_jobs = 0: expected -1 (all cores) or a number of threads >= 1")


# --- pydantic's first error, said in terms of params.yaml -------------------------------------------------


def _explain(error: ValidationError) -> ParamsError:
    """One line for the first problem: an unknown key before anything else, since a misspelt key
    also makes the right one missing."""
    problems = error.errors(include_url=False)
    problem = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
    key = _dotted(problem["loc"])
    if problem["type"] == "extra_forbidden":
        parents = problem["loc"][:-1]
        return ParamsError(f"{key}: unknown key; allowed in {_dotted(parents) or 'the top level'}: "
                           f"{', '.join(_resolve(_schema_at(parents))['properties'])}")
    schema = _schema_at(problem["loc"])
    if problem["type"] == "missing":
        return ParamsError(f"{key}: missing; expected {_describe(schema)}")
    if problem["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return ParamsError(f"{key or 'the top level'}: expected a mapping of keys, got {_show(problem['input'])}")
    return ParamsError(f"{key} = {_show(problem['input'])}: expected {_describe(schema)}")


_SCHEMA = Params.model_json_schema()


def _resolve(schema: dict) -> dict:
    if "$ref" in schema:
        return _SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _schema_at(loc) -> dict:
    """The JSON schema of the key at `loc` (names of sections and keys, list indices)."""
    schema = _SCHEMA
    for step in loc:
        schema = _resolve(_not_null(schema))
        schema = schema["items"] if isinstance(step, int) else schema["properties"][step]
    return schema


def _not_null(schema: dict) -> dict:
    options = [option for option in schema.get("anyOf", []) if option.get("type") != "null"]
    return options[0] if len(options) == 1 else schema


def _describe(schema: dict) -> str:
    schema = _resolve(schema)
    if "anyOf" in schema:
        return f"null or {_describe(_not_null(schema))}"
    if "properties" in schema:
        return f"a mapping with keys {', '.join(schema['properties'])}"
    if "enum" in schema or "const" in schema:
        return "one of " + ", ".join(map(str, schema.get("enum", [schema.get("const")])))
    if schema["type"] == "array":
        at_least = f"at least {schema['minItems']} " if "minItems" in schema else ""
        return f"a list of {at_least}items, each {_describe(schema['items'])}"
    noun = {"integer": "an integer", "number": "a number", "string": "a non-empty string", "boolean": "true or false"}
    # A constraint on a type with a validator of its own stays under its pydantic name (gt, not exclusiveMinimum).
    bounds = [f"{op} {schema[name]:g}" for names, op in ((("minimum", "ge"), ">="), (("exclusiveMinimum", "gt"), ">"),
                                                         (("maximum", "le"), "<=")) for name in names if name in schema]
    return noun[schema["type"]] + (" " + " and ".join(bounds) if bounds else "")


def _dotted(loc) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in loc).lstrip(".")


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
