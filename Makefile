# `make repro` sets up .venv and runs the whole pipeline; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
GRID_STAMP := $(VENV)/.installed-grid
DVC := PATH="$(BIN):$$PATH" dvc
# The default DVC remote `local`: a directory shared by every clone that can see it. Its absolute
# path goes into .dvc/config.local (see the README: a relative URL breaks `dvc exp push`).
DVC_STORAGE ?= ../aepipe-dvc-storage

.PHONY: setup lock remote repro grid test test-fast lint deps bench share pull compare report restore-params gpu-bundle verify-cache

setup: $(STAMP)
	@$(DVC) config --local remote.local.url >/dev/null 2>&1 || $(MAKE) --no-print-directory remote

# requirements.lock pins every dependency, direct or not, to the versions the suite was run with.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e ".[pipeline,test]"
	touch $@

# After a change to pyproject.toml's dependencies: the lock again (pip-tools), keeping the pins that
# still fit; then `make setup` and `make test`.
lock: setup
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --no-emit-index-url --no-emit-find-links --extra pipeline --extra test --extra serve --extra grid \
		--strip-extras -o requirements.lock pyproject.toml

# Points the `local` remote at DVC_STORAGE (default ../aepipe-dvc-storage), e.g.
# `make remote DVC_STORAGE=/mnt/team/aepipe`; `make setup` does it once, keeping what you set.
# It becomes the default unless .dvc/config (in git) names the team's own.
remote:
	$(DVC) remote add --local --force local "$(abspath $(DVC_STORAGE))"
	$(DVC) remote modify --local local verify true
	@$(DVC) config --project core.remote >/dev/null 2>&1 || $(DVC) remote default --local local

repro: setup
	$(DVC) repro

# The grid extra (Dask), which `make test` needs and `make repro` does not.
$(GRID_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c requirements.lock -e ".[pipeline,test,grid]"
	touch $@

# An experiment grid on Dask (docs/grid.md), each experiment a `dvc exp run` pushed to the remotes:
# make grid GRID="-S train.lr=0.001,0.0005 -S 'seed=range(1,3)' -j 2"
GRID ?= -S train.lr=0.001,0.0005 -j 2
grid: setup $(GRID_STAMP)
	PATH="$(BIN):$$PATH" aepipe grid $(GRID)

test: setup $(GRID_STAMP)
	PATH="$(BIN):$$PATH" python -m pytest

# While you work: the tests that run neither DVC nor a pipeline (no `pipeline` marker, tests/conftest.py).
test-fast: setup $(GRID_STAMP)
	PATH="$(BIN):$$PATH" python -m pytest -m "not pipeline and not gpu"

# ruff (pyproject.toml's [tool.ruff]): the lint rules, then the formatting, over every Python file.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# dvc.yaml's src/aepipe deps, from what each stage's script imports (after adding an import).
deps: setup
	$(BIN)/python tools/stage_deps.py

# The speed benchmarks the README's claims rest on; results in bench/results/, tables on stdout
# (one-off studies: bench/studies/README.md).
bench: setup
	PATH="$(BIN):$$PATH" python bench/train_speed.py
	PATH="$(BIN):$$PATH" python bench/pipeline_speed.py

# What bench/gpu/run.sh needs on a GPU machine without a registry: wheels and MNIST (git-ignored).
gpu-bundle:
	bash bench/gpu/prepare.sh 3.12

# Corrupt cache objects and results filed under params they were not computed with
# (tools/verify_cache.py): listed, and with REMOVE=1 deleted. `make share` pushes nothing while one
# is listed. REMOTE=1: the default DVC remote's objects instead.
verify-cache: setup
	PATH="$(BIN):$$PATH" python tools/verify_cache.py $(if $(REMOTE),--remote) $(if $(REMOVE),--remove)

# Alice's half of the team workflow (README, "Share experiments with your team")...
share: verify-cache
	$(DVC) push --run-cache --all-branches
	$(DVC) exp push origin --all-commits --run-cache

# ... and Bob's.
pull: setup
	$(DVC) pull --run-cache
	$(DVC) exp pull origin --all-commits

# The metrics and params that differ between the rows, and always the training, detection and export ones
# (--keep), also when nothing differs yet (a fresh clone: the committed numbers); no dependency
# hashes (every column with a `/`), so the table fits a 200-column terminal.
compare:
	$(DVC) exp show --only-changed --drop '.*/' --keep '^(val_mse|step|threshold|fp_.*|calibration_holds|auc_.*|export_.*)$$'

# One HTML page, dvc_plots/index.html: the workspace, BASE and the experiments named overlaid
# (make report EXPS="exp-a exp-b"): each anomaly kind's ROC and PR curves, the losses, the figures.
BASE ?= main
report:
	$(DVC) plots diff workspace $(BASE) $(EXPS) --out dvc_plots

# Back to the committed params.yaml, e.g. after a refused `dvc exp run -S` left its value there. Written
# from git's copy: DVC's restore of a failed run can leave the index's stat data matching the changed
# file, and then `git checkout params.yaml` sees nothing to do.
restore-params:
	git show HEAD:params.yaml > .params.yaml.tmp && mv .params.yaml.tmp params.yaml
