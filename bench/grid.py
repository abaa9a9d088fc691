"""`aepipe grid` on a 2-worker LocalCluster against `dvc queue start -j 2`: the same experiments,
interleaved, in one clone.

    python bench/grid.py [--rounds 2] [--experiments 4]

Works on a fresh `git clone` of this repository's HEAD in a temporary directory, with a bare git
repository as its origin and a local folder as its DVC remote (the README's setup). MNIST comes
from $AEPIPE_MNIST_MIRROR (a URL or a local folder of the four .gz files) or the official mirrors;
the download stage runs once, before the clock, and is in the local cache and the remote's run cache
alike. Each round runs a grid of N small experiments (the tests' small run, one epoch, N seeds) both
ways, the order alternating by round; each system gets seeds of its own, so nothing either computed
is restored by the other. Then each system reruns its first round's experiments, all restored from
the run cache: the grid from the remote into fresh clones (`--force`), the queue from the clone's
own cache.
Results: bench/results/grid.json and a table on stdout.
"""

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from aepipe.atomic import write_json
from provenance import BIN, RESULTS, SMALL, fresh_clone, machine, queue_busy, sh

JOBS = 2
POLL_SECONDS = 1


def overrides(seeds: list[int]) -> list[str]:
    sweep = f"seed={','.join(map(str, seeds))}"
    pairs = [*(f"{key}={value}" for key, value in SMALL.items()), sweep]
    return [arg for pair in pairs for arg in ("-S", pair)]


def by_grid(clone: Path, seeds: list[int], force: bool = False) -> dict:
    """`aepipe grid -j 2`: seconds, and the stages each experiment ran."""
    started = time.perf_counter()
    grid = [str(BIN / "aepipe"), "grid", *overrides(seeds), "-j", str(JOBS)]
    output = sh(*grid, *(["--force"] if force else []), cwd=clone)
    seconds = time.perf_counter() - started
    landed = [line for line in output.splitlines() if line.startswith("[") and " done: " in line]
    if len(landed) != len(seeds):
        sys.exit(f"the grid landed {len(landed)} of {len(seeds)}:\n{output}")
    ran = [int(line.split("ran ")[1].split()[0]) if "ran " in line else 0 for line in landed]
    each = [phases(line) for line in landed]
    return {"seconds": round(seconds, 1), "stages_run": ran, "phases": each}


def phases(line: str) -> dict:
    """A landed experiment's seconds per phase, from its progress line ("clone 0.9 s, ...")."""
    named = line.rsplit(" · ", 1)[-1].split(", ")
    return {phase: float(seconds) for phase, seconds, _ in (part.split() for part in named)}


def by_queue(clone: Path, seeds: list[int]) -> dict:
    """`dvc exp run --queue` of the same sweep, then `dvc queue start -j 2` until the queue is
    empty (its workers gone, polled every POLL_SECONDS): seconds, queueing included."""
    started = time.perf_counter()
    sh(str(BIN / "dvc"), "exp", "run", "--queue", *overrides(seeds), cwd=clone)
    sh(str(BIN / "dvc"), "queue", "start", "-j", str(JOBS), cwd=clone)
    while queue_busy(clone):
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    status = sh(str(BIN / "dvc"), "queue", "status", cwd=clone)
    if "Failed" in status:
        sys.exit(f"queued experiments failed in {clone}:\n{status}")
    return {"seconds": round(seconds, 1)}


def rounds(clone: Path, count: int, experiments: int) -> list[dict]:
    """Each round both ways, on seeds of their own, the order alternating."""
    measured = []
    for number in range(count):
        seeds = {
            system: [1000 * (2 * number + offset + 1) + i for i in range(experiments)]
            for offset, system in enumerate(("grid", "queue"))
        }
        order = ("grid", "queue") if number % 2 == 0 else ("queue", "grid")
        row = {"round": number + 1, "order": list(order)}
        for system in order:
            run = by_grid if system == "grid" else by_queue
            row[system] = {"seeds": seeds[system], **run(clone, seeds[system])}
            print(f"round {number + 1}, {system}: {row[system]['seconds']} s", flush=True)
        measured.append(row)
    return measured


def reruns(clone: Path, first: dict) -> dict:
    """The first round's experiments again, every stage restored from the run cache."""
    grid = by_grid(clone, first["grid"]["seeds"], force=True)
    queue = by_queue(clone, first["queue"]["seeds"])
    return {"grid --force": grid, "queue": queue}


def table(results: dict) -> str:
    n = results["experiments"]
    lines = [
        f"{n} experiments, -j {JOBS} | aepipe grid s | dvc queue s | grid's extra s per experiment",
        "--- | --- | --- | ---",
    ]
    for row in results["rounds"]:
        extra = (row["grid"]["seconds"] - row["queue"]["seconds"]) / n
        lines.append(
            f"round {row['round']} ({' then '.join(row['order'])}) | {row['grid']['seconds']} | "
            f"{row['queue']['seconds']} | {extra:+.1f}"
        )
    rerun = results["rerun"]
    extra = (rerun["grid --force"]["seconds"] - rerun["queue"]["seconds"]) / n
    lines.append(
        f"rerun, all restored | {rerun['grid --force']['seconds']} | {rerun['queue']['seconds']} | "
        f"{extra:+.1f}"
    )
    lines.append("")
    grids = [row["grid"] for row in results["rounds"]] + [rerun["grid --force"]]
    for label, runs in (("computed", grids[:-1]), ("restored", grids[-1:])):
        each = [phase for run in runs for phase in run["phases"]]
        means = {name: sum(p[name] for p in each) / len(each) for name in each[0]}
        shown = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in means.items())
        lines.append(f"grid task, {label}, mean per experiment: {shown}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--experiments", type=int, default=4)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aepipe-grid-bench-"))
    clone = fresh_clone(root)
    measured = rounds(clone, args.rounds, args.experiments)
    results = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "commit": sh("git", "rev-parse", "--short", "HEAD", cwd=clone).strip(),
        "experiments": args.experiments,
        "jobs": JOBS,
        "small_run": SMALL,
        "rounds": measured,
        "rerun": reruns(clone, measured[0]),
        "queue_poll_seconds": POLL_SECONDS,
    }
    write_json(RESULTS / "grid.json", results)
    print(table(results))
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
