"""`aepipe score` and `aepipe calibrate` on a Dask cluster (--scheduler ADDRESS, --cluster FILE):
this process reads the images and writes the results, as it does alone; the batches it reads are
scored on the cluster's workers, each by the same scorer this process would build, from the same
files' bytes (sent once, so that workers need no filesystem of the client's), and come back in
their order. The CSV, the maps and the drift watch are this process's, and the same."""

import hashlib
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from aepipe.anomaly.verdicts import Scores
from aepipe.deploy.inputs import Input, in_order
from aepipe.deploy.scorers import Scorer, score_readable, scorer_of_files
from aepipe.grid.clusters import connect, scratch_dir

IN_FLIGHT_PER_THREAD = 2  # batches sent per worker thread: one scored, one on its way


@dataclass(frozen=True)
class ScorerFiles:
    """The files a scorer is built from, by the option that named them (onnx; or model, score and
    threshold), as their bytes."""

    contents: dict[str, bytes]

    @classmethod
    def of(cls, paths: dict[str, Path]) -> "ScorerFiles":
        return cls({option: path.read_bytes() for option, path in paths.items()})

    @property
    def key(self) -> str:
        digest = hashlib.sha256()
        for option, content in sorted(self.contents.items()):
            digest.update(option.encode() + hashlib.sha256(content).digest())
        return digest.hexdigest()


_built: dict[str, Scorer] = {}  # on a worker: its scorers by their files' key, built once


def worker_scorer(files: ScorerFiles) -> Scorer:
    """The scorer of these files, built on first use in this process from copies in its scratch
    directory."""
    if files.key not in _built:
        folder = Path(tempfile.mkdtemp(prefix="aepipe-scorer-", dir=scratch_dir()))
        paths = {option: folder / option for option in files.contents}
        for option, content in files.contents.items():
            paths[option].write_bytes(content)
        _built[files.key] = scorer_of_files(paths)
    return _built[files.key]


def score_on_worker(files: ScorerFiles, batch: list[Input], with_maps: bool) -> Scores | None:
    return score_readable(batch, worker_scorer(files), with_maps)


def cluster_scored(
    batches: Iterable[list[Input]],
    scorer: Scorer,
    with_maps: bool,
    scheduler: str | None,
    cluster_file: Path | None,
) -> Iterator[tuple[list[Input], Scores | None]]:
    """(batch, its scores) for each batch, in order, scored on the cluster by the scorer of the
    same files as `scorer`."""
    with ExitStack() as stack:
        client = connect(stack, scheduler, cluster_file)
        client.wait_for_workers(1)
        sent = client.scatter(ScorerFiles.of(scorer.files), broadcast=True)

        def submit(batch: list[Input]):
            return client.submit(score_on_worker, sent, batch, with_maps, pure=False)

        def window() -> int:
            return IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))

        yield from in_order(batches, submit, window)
