"""Experiment grids on a Dask cluster (`aepipe grid`): each experiment a whole `dvc exp run` in a
fresh clone on a worker, its results shared through the git and DVC remotes; and the clusters
`aepipe score --scheduler/--cluster` scores on. Needs the `grid` extra (Dask)."""
