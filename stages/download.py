"""Stage download: the four MNIST IDX files into data/raw/, verified by SHA-256."""

import os

from aepipe.errors import exit_on_error
from aepipe.mnist import download_mnist
from aepipe.params import load_params

MIRROR_ENV = "AEPIPE_MNIST_MIRROR"  # a URL or a local directory, tried before params' mirrors


def main() -> None:
    params = load_params("params.yaml").download
    preferred = [os.environ[MIRROR_ENV]] if os.environ.get(MIRROR_ENV) else []
    download_mnist("data/raw", preferred + params.mirrors, params.timeout_s)


if __name__ == "__main__":
    exit_on_error(main)
