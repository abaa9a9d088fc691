#!/usr/bin/env bash
# The GPU check in one command: install offline from bench/gpu/bundle (make gpu-bundle), run the whole
# default pipeline as a user would, check it, train again to see how far two GPU runs agree, run the
# benchmarks and the GPU tests; everything measured goes to $OUT (results.tgz and log.txt).
#
#   bench/gpu/run.sh                 # on the lent GPU machine, from the repository root (see bench/README.md)
#   AEPIPE_REHEARSAL=1 bench/gpu/run.sh   # the same steps here on a CPU, small params, to rehearse
#
# The machine has Python 3.12 with torch and the scientific stack, no registry, and no DVC, DVCLive,
# openTSNE or pydantic: those come from the bundle's wheels, installed with --no-index.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/bench/gpu/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
BUNDLE=bench/gpu/bundle
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1 AEPIPE_MNIST_MIRROR=$PWD/$BUNDLE/mnist AEPIPE_TEST_MNIST_DIR=$PWD/$BUNDLE/mnist
export GIT_AUTHOR_NAME=gpu GIT_AUTHOR_EMAIL=gpu@localhost GIT_COMMITTER_NAME=gpu GIT_COMMITTER_EMAIL=gpu@localhost
step() { echo; echo "=== $(date +%T) $*"; }
timed() { local start=$SECONDS; "$@"; local status=$?; echo "--- $((SECONDS - start)) s (exit $status): ${*:0:120}"; return $status; }

step "install (offline)"
version=$($PYTHON -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
timed $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "$BUNDLE/wheels-cp$version"/*.whl || exit 1
timed $PYTHON -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
bin=$($PYTHON -c 'import sys, os; print(os.path.dirname(sys.executable))')
# The stages run `python`: a wrapper, not a link (a link would lose the virtual environment it is in).
mkdir -p /tmp/aepipe-bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v $PYTHON)" > /tmp/aepipe-bin/python
chmod +x /tmp/aepipe-bin/python
export PATH=/tmp/aepipe-bin:$bin:$PATH
$PYTHON -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
            torch.cuda.get_device_name() if torch.cuda.is_available() else "")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null

step "a git repository, as a user has"
[ -d .git ] || { git init -q && git add -A && git commit -qm "the copy on the GPU machine"; }
git status --short | head
if [ -n "${AEPIPE_REHEARSAL:-}" ]; then  # small params: the same steps in minutes on a CPU
    $PYTHON - <<'PY'
import yaml
params = yaml.safe_load(open("params.yaml"))
params["data"].update(train_size=4096, val_size=1024)
params["train"]["epochs"] = 2
params["judge"].update(epochs=1, train_size=4096)
params["sample"]["count"] = 500
params["interpolate"].update(start=3, end=10)
params["denoise"]["index"] = 7
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
PY
    git commit -qam "rehearsal: small params"
    EPOCHS=1
fi

step "the whole default pipeline: dvc repro"
timed dvc repro || exit 1
step "check the outputs"
$PYTHON bench/gpu/check_outputs.py "$OUT/first_run.json" || exit 1
step "train again: how far do two GPU runs agree"
timed dvc repro -f -s train || exit 1
$PYTHON bench/gpu/check_outputs.py "$OUT/second_run.json" --compare "$OUT/first_run.json"

step "GPU tests"
# Without the project's addopts: they name options of the xdist version `make setup` installs.
timed $PYTHON -m pytest -o addopts="" -p no:randomly -m gpu tests/test_gpu.py -v
step "training speed"
timed $PYTHON bench/train_speed.py --epochs "${EPOCHS:-20}"
step "pipeline speed"
timed $PYTHON bench/pipeline_speed.py

step "results"
tar czf "$OUT/results.tgz" bench/results metrics reports dvclive/metrics.json "$OUT"/*.json 2>/dev/null
ls -l "$OUT"
