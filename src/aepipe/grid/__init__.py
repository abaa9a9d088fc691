"""Experiment grids on a Dask cluster (`aepipe grid`): each experiment a whole `dvc exp run` in a
fresh clone on a worker, its results shared through the git and DVC remotes. Needs the `grid`
extra (Dask); nothing else in aepipe imports this package."""
