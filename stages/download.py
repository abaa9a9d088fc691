"""Stage download: the four IDX files of data.dataset (MNIST or Fashion-MNIST) into data/raw/, verified by SHA-256."""

import os

from aepipe.errors import exit_on_error
from aepipe.mnist import DATASETS, download_dataset
from aepipe.params import load_params


def main() -> None:
    params = load_params("params.yaml")
    dataset = params.data.dataset
    mirror_env = DATASETS[dataset].mirror_env  # a URL or a local directory, tried before params' mirrors
    preferred = [os.environ[mirror_env]] if os.environ.get(mirror_env) else []
    download_dataset("data/raw", preferred + params.download.mirrors.of(dataset), params.download.timeout_s, dataset)


if __name__ == "__main__":
    exit_on_error(main)
