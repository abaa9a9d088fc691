import copy
import subprocess
import sys

import pytest
import yaml

from aepipe.params import (
    ParamsError,
    check_against_classes,
    fit_validation_set,
    load_params,
    parse_params,
    resolve_auto,
)
from conftest import REPO


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def with_value(raw: dict, key: str, value) -> dict:
    changed = copy.deepcopy(raw)
    *sections, name = key.split(".")
    target = changed
    for section in sections:
        target = target[section]
    target[name] = value
    return changed


def test_the_repository_params_are_valid_and_every_key_reruns_some_stage():
    load_params(REPO / "params.yaml")
    listed = {
        key
        for stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values()
        for entry in stage.get("params", [])
        for key in ([entry] if isinstance(entry, str) else [])
    }
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    keys = {
        f"{section}.{key}" if isinstance(values, dict) else section
        for section, values in raw.items()
        for key in (values if isinstance(values, dict) else [None])
    }
    # A key no stage lists (itself or its section) would change nothing when changed: a stale cache.
    unread = {key for key in keys if key not in listed and key.split(".")[0] not in listed}
    assert not unread, f"params no stage in dvc.yaml lists: {sorted(unread)}"


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("train.latent_dim", 0, "train.latent_dim = 0: input should be greater than or equal to 1"),
        ("train.latent_dim", "ten", "train.latent_dim = 'ten': input should be a valid integer"),
        ("train.latent_dim", 2.5, "train.latent_dim = 2.5: input should be a valid integer"),
        ("train.epochs", True, "train.epochs = true: input should be a valid integer"),
        (
            "train.batch_size",
            -64,
            "train.batch_size = -64: input should be greater than or equal to 1",
        ),
        ("train.lr", 0, "train.lr = 0: input should be greater than 0"),
        ("train.lr", "fast", "train.lr = 'fast': input should be a valid number"),
        (
            "train.weight_decay",
            -0.1,
            "train.weight_decay = -0.1: input should be greater than or equal to 0",
        ),
        ("train.noise_std", 1.5, "train.noise_std = 1.5: input should be less than or equal to 1"),
        ("train.device", "gpu", "train.device = 'gpu': input should be 'auto', 'cpu' or 'cuda'"),
        (
            "train.workers",
            65,
            "train.batch_size = 64: expected at least train.workers = 65 (the global batch is "
            "split across the workers)",
        ),
        (
            "data.train_size",
            60_001,
            "data.train_size = 60001: input should be less than or equal to 60000",
        ),
        (
            "data.normal_classes",
            [3, 3],
            "data.normal_classes = [3, 3]: expected each class at most once",
        ),
        (
            "download.mirrors.mnist",
            [],
            "download.mirrors.mnist = []: list should have at least 1 item after validation, not 0",
        ),
        (
            "download.mirrors.fashion-mnist",
            ["https://a/", 3],
            "download.mirrors.fashion-mnist[1] = 3: input should be a valid string",
        ),
        (
            "data.dataset",
            "cifar10",
            "data.dataset = 'cifar10': input should be 'mnist', 'fashion-mnist' or 'folder'",
        ),
        (
            "anomaly.corruptions.blank",
            "yes",
            "anomaly.corruptions.blank = 'yes': input should be a valid boolean",
        ),
        ("seed", -1, "seed = -1: input should be greater than or equal to 0"),
        ("threshold.k", float("nan"), "threshold.k = .nan: input should be a finite number"),
        (
            "interpolate.start",
            10_000,
            "interpolate.start = 10000: expected the index of a validation image, 0 to 9999, or "
            "auto",
        ),
        ("denoise.noise_std", [0.1, 0], "denoise.noise_std[1] = 0: input should be greater than 0"),
        (
            "anomaly.score",
            "mahalanobis",
            "anomaly.score = 'mahalanobis': input should be 'auto', 'reconstruction', 'combined' "
            "or 'map_max'",
        ),
        ("tsne.method", "exact", "tsne.method = 'exact': input should be 'fft' or 'bh'"),
        (
            "tsne.neighbors",
            "kd-tree",
            "tsne.neighbors = 'kd-tree': input should be 'exact', 'annoy', 'pynndescent' or 'auto'",
        ),
        ("tsne.ints_in_interval", 0, "tsne.ints_in_interval = 0: input should be greater than 0"),
        ("tsne.n_jobs", 0, "tsne.n_jobs = 0: expected -1 (all cores) or a number of threads >= 1"),
    ],
)
def test_bad_values_are_refused_naming_key_value_and_rule(raw, key, value, expected):
    with pytest.raises(ParamsError) as failure:
        parse_params(with_value(raw, key, value))
    assert str(failure.value) == expected


def test_unknown_key_is_refused_with_the_allowed_keys(raw):
    raw["train"]["latnet_dim"] = 10
    with pytest.raises(
        ParamsError, match=r"^train.latnet_dim: unknown key; allowed in train: latent_dim, epochs"
    ):
        parse_params(raw)


def test_a_dataset_without_mirrors_is_refused_naming_the_datasets(raw):
    raw["download"]["mirrors"]["fashion_mnist"] = raw["download"]["mirrors"].pop("fashion-mnist")
    with pytest.raises(
        ParamsError,
        match=r"^download.mirrors.fashion_mnist: unknown key; allowed in download.mirrors: mnist, "
        r"fashion-mnist$",
    ):
        parse_params(raw)


def test_missing_key_is_refused(raw):
    del raw["train"]["lr"]
    with pytest.raises(
        ParamsError,
        match=r"^train.lr: missing; every key of train is needed: latent_dim, epochs, batch_size, "
        r"lr,",
    ):
        parse_params(raw)


def test_section_must_be_a_mapping(raw):
    raw["train"] = [1, 2]
    with pytest.raises(ParamsError, match=r"^train: expected a mapping of keys, got \[1, 2\]$"):
        parse_params(raw)


def test_params_yaml_is_read_as_yaml_1_2_as_dvc_writes_it(tmp_path):
    # DVC's `-S train.lr=1e-4` writes `lr: 1e-4`: a string in YAML 1.1 (PyYAML), a number in YAML
    # 1.2.
    text = (REPO / "params.yaml").read_text()
    assert "  lr: 0.001" in text and "  k: 1.0" in text
    (tmp_path / "params.yaml").write_text(
        text.replace("  lr: 0.001", "  lr: 1e-4").replace("  k: 1.0", "  k: 1")
    )
    params = load_params(tmp_path / "params.yaml")
    assert (
        params.train.lr == 1e-4
        and params.threshold.k == 1.0
        and isinstance(params.threshold.k, float)
    )


@pytest.mark.pipeline
def test_a_stage_with_bad_params_exits_2_with_one_line_naming_the_key(tmp_path, raw):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(with_value(raw, "train.lr", -1)))
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "train.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "error: params.yaml: train.lr = -1: input should be greater than 0"
    )
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


def test_cuda_without_a_gpu_is_refused_naming_the_key(monkeypatch):
    import torch

    from aepipe.devices import resolve_device
    from aepipe.errors import AepipeError

    # refused on any machine, a GPU one too
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        AepipeError,
        match="^train.device = cuda, but no CUDA GPU is available here; use auto or cpu$",
    ):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu" and resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda").type == "cuda" and resolve_device("auto").type == "cuda"


def test_check_params_refuses_cuda_where_there_is_no_gpu(monkeypatch, tmp_path, capsys):
    import runpy

    import torch

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["device"] = "cuda"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    # as `python stages/check_params.py` finds its guard
    monkeypatch.syspath_prepend(str(REPO / "stages"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(REPO / "stages" / "check_params.py"), run_name="__main__")
    assert stopped.value.code == 2
    assert capsys.readouterr().err.startswith(
        "error: train.device = cuda, but no CUDA GPU is available here; use auto or cpu\n"
    )
    assert not (tmp_path / "data").exists(), "the check wrote its output"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    runpy.run_path(str(REPO / "stages" / "check_params.py"), run_name="__main__")
    assert (tmp_path / "data" / "params_checked.txt").is_file()


def test_indices_and_perplexity_are_checked_against_the_validation_size(raw):
    raw["data"]["val_size"] = 61
    raw["interpolate"].update(start=1, end=2)
    raw["denoise"]["index"] = 60
    raw["tsne"]["perplexity"] = 30
    with pytest.raises(
        ParamsError,
        match=r"^tsne.perplexity = 30: too large for 61 validation images; expected at most 20, or "
        r"auto$",
    ):
        parse_params(raw)
    raw["tsne"]["perplexity"] = 20
    assert parse_params(raw).val_images == 61
    raw["denoise"]["index"] = 61
    with pytest.raises(
        ParamsError,
        match=r"^denoise.index = 61: expected the index of a validation image, 0 to 60, or auto$",
    ):
        parse_params(raw)


def test_auto_picks_the_notebooks_images_where_the_set_holds_them_else_its_own(raw):
    """MNIST's whole test set: the notebook's digits and perplexity 30; any smaller set: its first
    and last image, and the largest perplexity it fits."""

    def picked(params):
        return (
            params.interpolate.start,
            params.interpolate.end,
            params.denoise.index,
            params.tsne.perplexity,
        )

    params = parse_params(raw)
    assert picked(params) == ("auto", "auto", "auto", "auto")
    assert picked(fit_validation_set(params, 10_000)) == (4121, 9832, 420, 30.0)
    assert picked(fit_validation_set(params, 40)) == (0, 39, 0, 13.0)
    assert picked(fit_validation_set(parse_params(with_value(raw, "denoise.index", 7)), 40))[2] == 7


def test_normal_classes_must_be_the_datas(raw):
    params, inspection = parse_params(raw), ["good", "scratch", "stain"]
    # the default, every class: good alone
    check_against_classes(params, inspection, inspection=True, labelled=True)
    assert resolve_auto(params, inspection=True).data.normal_classes == [0]
    check_against_classes(
        parse_params(with_value(raw, "data.normal_classes", [0])),
        inspection,
        inspection=True,
        labelled=True,
    )
    with pytest.raises(
        ParamsError,
        match=r"^data.normal_classes = \[0, 1\]: data/images has the MVTec AD layout, whose "
        r"normal class is good \(label 0\); expected \[0\] or the default",
    ):
        check_against_classes(
            parse_params(with_value(raw, "data.normal_classes", [0, 1])),
            inspection,
            inspection=True,
            labelled=True,
        )
    with pytest.raises(
        ParamsError,
        match=r"^data.normal_classes = \[5\]: no images have these labels; this dataset's "
        r"are 0 to 1 \(cats, dogs\)$",
    ):
        check_against_classes(
            parse_params(with_value(raw, "data.normal_classes", [5])),
            ["cats", "dogs"],
            inspection=False,
            labelled=True,
        )
    check_against_classes(
        parse_params(with_value(raw, "data.normal_classes", [5])),
        ["photos"],
        inspection=False,
        labelled=False,
    )
    assert resolve_auto(
        parse_params(with_value(raw, "data.normal_classes", [5])), False, labelled=False
    ).data.normal_classes == [0], "a folder without classes has one: normal_classes does not apply"


def test_the_segmenter_map_without_a_segmenter_is_refused_naming_both_keys(raw):
    asked = with_value(raw, "anomaly.map", "segmenter")
    # train.segmenter auto: an inspection set trains one (the stage says so otherwise)
    parse_params(asked)
    with pytest.raises(ParamsError) as failure:
        parse_params(with_value(asked, "train.segmenter", False))
    assert str(failure.value) == (
        "anomaly.map = segmenter, but train.segmenter = false trains none; expected "
        "train.segmenter true or auto, or anomaly.map auto, error or ssim"
    )


def test_auto_is_resolved_once_for_the_kind_of_dataset(raw):
    def resolved(inspection: bool, **settings):
        changed = raw
        for key, value in settings.items():
            changed = with_value(changed, key.replace("__", "."), value)
        params = resolve_auto(parse_params(changed), inspection)
        return (
            params.train.segmenter,
            params.anomaly.score,
            params.anomaly.map,
            params.anomaly.map_sigma,
        )

    # The best measured of each (docs/results.md): an inspection set's segmenter, its map's peak,
    # its blur chosen once the model is trained (aepipe.anomaly.blur_choice, by the score stage).
    assert resolved(inspection=True) == (True, "map_max", "segmenter", "auto")
    assert resolved(inspection=False) == (False, "combined", "error", 2.0)
    assert resolved(True, train__segmenter=False) == (False, "map_max", "ssim", "auto")
    assert resolved(False, train__segmenter=True) == (True, "combined", "segmenter", 2.0)
    assert resolved(
        True, anomaly__score="reconstruction", anomaly__map="error", anomaly__map_sigma=3.0
    ) == (True, "reconstruction", "error", 3.0)
    assert parse_params(raw).anomaly.score == "auto", "the params as written stay as they are"


def test_the_normal_classes_old_name_is_read_with_a_warning():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["normal_digits"] = params["data"].pop("normal_classes")
    params["data"]["normal_digits"] = [3]
    with pytest.warns(FutureWarning, match="data.normal_digits is called data.normal_classes"):
        assert parse_params(params).data.normal_classes == [3]
    params["data"]["normal_classes"] = [3]
    with pytest.raises(ParamsError, match="normal_digits"):
        parse_params(params)
