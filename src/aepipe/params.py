"""The typed schema of the pipeline's parameters, checked once before a stage does any work.

Values live in params.yaml only; the schema says what each key may hold. `parse_params` turns the
parsed YAML into frozen dataclasses or raises a ParamsError naming the key, the value and what
is allowed, so a typo or a bad value never reaches the training code.
"""

import math
import re
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path

import yaml

from aepipe.errors import AepipeError

MNIST_TRAIN_SIZE = 60_000
MNIST_VAL_SIZE = 10_000


class ParamsError(AepipeError):
    pass


def rule(*, ge=None, gt=None, le=None, choices=None, min_items=None):
    """Constraints on one key, beyond its type."""
    return field(metadata={"ge": ge, "gt": gt, "le": le, "choices": choices, "min_items": min_items})


@dataclass(frozen=True)
class DownloadParams:
    mirrors: list[str] = rule(min_items=1)  # base URLs tried in order, after $AEPIPE_MNIST_MIRROR
    timeout_s: float = rule(gt=0)  # per-connection timeout for each HTTP request


@dataclass(frozen=True)
class DataParams:
    # Use only the first N images of a split (null: all of it). For quick experiments and tests.
    train_size: int | None = rule(ge=1, le=MNIST_TRAIN_SIZE)
    val_size: int | None = rule(ge=1, le=MNIST_VAL_SIZE)
    # Digits the model trains and calibrates on; the other digits of the validation set are the
    # anomalies (MNIST's one-class benchmark). All ten: no held-out digits.
    normal_digits: list[int] = rule(ge=0, le=9, min_items=1)


@dataclass(frozen=True)
class TrainParams:
    latent_dim: int = rule(ge=1)
    epochs: int = rule(ge=1)
    batch_size: int = rule(ge=1)
    lr: float = rule(gt=0)
    weight_decay: float = rule(ge=0)
    device: str = rule(choices=("auto", "cpu", "cuda"))
    # Data-parallel processes per machine (torchrun + DDP): GPUs on a GPU machine, CPU workers
    # otherwise. 1: a plain process. train.batch_size stays the global batch.
    workers: int = rule(ge=1)


@dataclass(frozen=True)
class ThresholdParams:
    k: float = rule(ge=0)  # mean + k·std: the seed's per-batch rule, and the per-image mean_std rule
    method: str = rule(choices=("mean_std", "quantile"))  # per-image threshold rule
    q: float = rule(gt=0, le=1)  # quantile of normal images' scores, for method quantile


@dataclass(frozen=True)
class CorruptionParams:
    """Synthetic anomalies made from normal validation images; null or false leaves one out."""

    gaussian_noise: float | None = rule(gt=0)  # std of added noise, pixels in [0, 1]
    rotation: float | None = rule(gt=0, le=360)  # degrees, counter-clockwise
    patch: int | None = rule(ge=1, le=28)  # side of a white square pasted at a random place
    invert: bool = rule()  # 1 - pixel
    blank: bool = rule()  # all black
    saturate: bool = rule()  # all white


@dataclass(frozen=True)
class AnomalyParams:
    # Share of the normal validation images that sets the per-image threshold; the rest test it.
    calibration_fraction: float = rule(gt=0, le=0.9)
    corruptions: CorruptionParams = rule()


@dataclass(frozen=True)
class TsneParams:
    perplexity: float = rule(gt=0)
    early_exaggeration_iter: int = rule(ge=0)  # iterations with exaggerated attraction (openTSNE: 250)
    n_iter: int = rule(ge=1)  # iterations after that (openTSNE: 500)
    method: str = rule(choices=("fft", "bh"))  # negative-gradient approximation
    n_jobs: int = rule(ge=-1)  # threads; -1: all cores


@dataclass(frozen=True)
class InterpolateParams:
    start: int = rule(ge=0)  # index of a validation image
    end: int = rule(ge=0)
    steps: int = rule(ge=2)  # decoded points, endpoints included


@dataclass(frozen=True)
class DenoiseParams:
    index: int = rule(ge=0)  # validation image shown in the figure
    noise_std: list[float] = rule(gt=0, min_items=1)  # Gaussian noise levels (pixels in [0, 1])


@dataclass(frozen=True)
class Params:
    seed: int = rule(ge=0)
    download: DownloadParams = rule()
    data: DataParams = rule()
    train: TrainParams = rule()
    threshold: ThresholdParams = rule()
    anomaly: AnomalyParams = rule()
    tsne: TsneParams = rule()
    interpolate: InterpolateParams = rule()
    denoise: DenoiseParams = rule()

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
    params = _parse_section(Params, raw, key="")
    _check_relations(params)
    return params


def _check_relations(params: Params) -> None:
    """Rules that tie one key to another."""
    n_val = params.val_images
    for key, index in (("interpolate.start", params.interpolate.start), ("interpolate.end", params.interpolate.end),
                       ("denoise.index", params.denoise.index)):
        if index >= n_val:
            raise ParamsError(f"{key} = {index}: expected the index of a validation image, 0 to {n_val - 1}")
    if len(set(params.data.normal_digits)) != len(params.data.normal_digits):
        raise ParamsError(f"data.normal_digits = {list(params.data.normal_digits)}: expected each digit at most once")
    if params.train.batch_size < params.train.workers:
        raise ParamsError(
            f"train.batch_size = {params.train.batch_size}: expected at least train.workers = {params.train.workers} "
            "(the global batch is split across the workers)"
        )
    if params.tsne.n_jobs == 0:
        raise ParamsError("tsne.n_jobs = 0: expected -1 (all cores) or a number of threads >= 1")
    most = (n_val - 1) / 3  # openTSNE needs 3·perplexity neighbours for every point
    if params.tsne.perplexity > most:
        raise ParamsError(
            f"tsne.perplexity = {params.tsne.perplexity:g}: too large for {n_val} validation images; expected at most {most:g}"
        )


def _parse_section(schema: type, raw: object, key: str):
    where = key or "the top level"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping of keys, got {_show(raw)}")
    allowed = {f.name: f for f in fields(schema)}
    for name in raw:
        if name not in allowed:
            raise ParamsError(
                f"{_join(key, name)}: unknown key; allowed in {where}: {', '.join(allowed)}"
            )
    values = {}
    for name, spec in allowed.items():
        full_key = _join(key, name)
        annotation = typing.get_type_hints(schema)[name]
        if name not in raw:
            raise ParamsError(f"{full_key}: missing; expected {_describe(annotation, spec.metadata)}")
        values[name] = _parse_value(raw[name], annotation, spec.metadata, full_key)
    return schema(**values)


def _parse_value(value: object, annotation, meta: dict, key: str):
    if is_dataclass(annotation):
        return _parse_section(annotation, value, key)
    optional_of = _optional_of(annotation)
    if optional_of is not None:
        if value is None:
            return None
        try:
            return _parse_value(value, optional_of, meta, key)
        except ParamsError:
            raise _bad_value(key, value, annotation, meta) from None
    if typing.get_origin(annotation) is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list) or len(value) < (meta.get("min_items") or 0):
            raise _bad_value(key, value, annotation, meta)
        item_rules = {**meta, "min_items": None}
        return [_parse_value(item, item_type, item_rules, f"{key}[{i}]") for i, item in enumerate(value)]
    scalar = _coerce_scalar(value, annotation)
    if scalar is None or not _within_rules(scalar, meta):
        raise _bad_value(key, value, annotation, meta)
    return scalar


def _coerce_scalar(value: object, annotation):
    if isinstance(value, bool):  # bool is an int in Python; never a valid number here
        return value if annotation is bool else None
    if annotation is int:
        return value if isinstance(value, int) else None
    if annotation is float:
        # PyYAML reads YAML 1.1, where `1e-4` (no dot) is a string; DVC's `-S` writes floats
        # that way, so such strings count as numbers.
        if isinstance(value, str) and _FLOAT_LITERAL.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        return None
    if annotation is str:
        return value if isinstance(value, str) and value else None
    return None


_FLOAT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _within_rules(value, meta: dict) -> bool:
    checks = [
        meta.get("ge") is None or value >= meta["ge"],
        meta.get("gt") is None or value > meta["gt"],
        meta.get("le") is None or value <= meta["le"],
        meta.get("choices") is None or value in meta["choices"],
    ]
    return all(checks)


def _bad_value(key: str, value: object, annotation, meta: dict) -> ParamsError:
    return ParamsError(f"{key} = {_show(value)}: expected {_describe(annotation, meta)}")


def _describe(annotation, meta: dict) -> str:
    if is_dataclass(annotation):
        return f"a mapping with keys {', '.join(f.name for f in fields(annotation))}"
    optional_of = _optional_of(annotation)
    if optional_of is not None:
        return f"null or {_describe(optional_of, meta)}"
    if typing.get_origin(annotation) is list:
        (item_type,) = typing.get_args(annotation)
        at_least = f"at least {meta['min_items']} " if meta.get("min_items") else ""
        return f"a list of {at_least}items, each {_describe(item_type, {**meta, 'min_items': None})}"
    if meta.get("choices"):
        return "one of " + ", ".join(str(choice) for choice in meta["choices"])
    noun = {int: "an integer", float: "a number", str: "a non-empty string", bool: "true or false"}
    bounds = [
        f"{op} {meta[name]}" for name, op in (("ge", ">="), ("gt", ">"), ("le", "<=")) if meta.get(name) is not None
    ]
    return noun[annotation] + (" " + " and ".join(bounds) if bounds else "")


def _optional_of(annotation):
    """`X` for an `X | None` annotation, else None."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _show(value: object) -> str:
    return repr(value) if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
