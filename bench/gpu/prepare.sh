#!/usr/bin/env bash
# Builds bench/gpu/bundle/ (git-ignored): the wheels that a lent GPU machine lacks, and MNIST's four
# archives, so that bench/gpu/run.sh can install and run everything there with no registry.
#
#   bench/gpu/prepare.sh [PYTHON_VERSION]      # 3.12: the GPU machine's (default); 3.11 for a rehearsal here
#
# The GPU image already holds torch, numpy, pandas, matplotlib, scikit-learn, scipy, pillow, pyyaml,
# tqdm, pytest and more (see the device tool's KINDS.md); what DVC, DVCLive, openTSNE, pydantic and
# ruamel.yaml.clib need beyond them is fetched here for that Python. antlr4-python3-runtime (DVC
# needs it through hydra) has no wheel on the registry: it is built here.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON_VERSION=${1:-3.12}
BUNDLE=bench/gpu/bundle
WHEELS=$BUNDLE/wheels-cp${PYTHON_VERSION/./}
MNIST=${AEPIPE_MNIST_MIRROR:-../shared/mnist}
# On the GPU machine already, in versions these packages accept: not carried.
PRESENT='^(numpy|pandas|matplotlib|scikit_learn|scipy|pillow|PyYAML|pyyaml|tqdm|torch|torchvision|triton|nvidia_.*|contourpy|kiwisolver|fonttools|cycler|python_dateutil|pytz|tzdata|six|joblib|threadpoolctl|sympy|mpmath|networkx|jinja2|MarkupSafe|markupsafe|filelock|fsspec|setuptools|typing_extensions|packaging|pyparsing|psutil|requests|urllib3|idna|certifi|charset_normalizer|rich|pygments|markdown_it_py|mdurl|attrs|pytest|pluggy|iniconfig|execnet|pytest_xdist)-'

rm -rf "$WHEELS" "$BUNDLE/antlr" && mkdir -p "$WHEELS" "$BUNDLE/antlr" "$BUNDLE/mnist"
python3 -m pip wheel -q --no-deps -w "$BUNDLE/antlr" antlr4-python3-runtime==4.9.3
python3 -m pip download -q --only-binary=:all: --python-version "$PYTHON_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --find-links "$BUNDLE/antlr" -d "$WHEELS" \
    dvc==3.67.1 dvclive==3.49.1 openTSNE==1.0.4 "pydantic>=2,<3" "ruamel.yaml.clib>=0.2.15" onnx==1.23.2 onnxruntime==1.32.0
find "$WHEELS" -name '*.whl' -printf '%f\n' | grep -E "$PRESENT" | sed "s|^|$WHEELS/|" | xargs -r rm
cp "$MNIST"/*-ubyte.gz "$BUNDLE/mnist/"
echo "$(ls "$WHEELS" | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1) in $WHEELS; MNIST in $BUNDLE/mnist"
