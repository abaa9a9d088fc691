"""The fault matrix: each fault made for real on a fresh clone's small run, and what it left.

    python bench/faults.py [--cases kill,calibrate,disk,queue,remote]

A fresh clone of HEAD (bench/provenance.py) runs the small run (two epochs), commits it, tags it
in the registry's way and pushes it: that is what the user had. Each case then works on a copy of
it and records one row: what was lost (an output of the committed run whose cache object is gone
or no longer its md5; HEAD or a tag moved), what was left half-written (a file git sees that is
not the project's, an atomic write's temporary file, an output neither absent nor complete),
whether a corrupt object was computed from, the recovery command, and whether it recovered: the
outputs then equal to an uninterrupted run's (timings aside), `dvc status` clean.

- kill: `kill -9` of `dvc exp run -S seed=7` while each stage that computes runs (train mid-epoch,
  score, threshold, evaluate, the figures, t-SNE, interpolate, denoise, the judge's training,
  sample, export, publish); recovery: the same command again.
- calibrate: `aepipe calibrate --onnx` killed at points across its run while it replaces a
  detector; recovery: the same command again.
- disk: the project on a tmpfs that fills during `dvc exp run -S seed=7`; recovery: space freed,
  the same command again.
- queue: `dvc queue start -j 2` of seeds 7 and 8; each experiment equal to its own run alone.
- remote: a flipped byte in the DVC remote's copy of the model; a second clone pulls it.

MNIST from $AEPIPE_MNIST_MIRROR. Needs root for the tmpfs (the disk case). Results:
bench/results/faults.json and a table on stdout.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

from aepipe.atomic import write_json
from provenance import BIN, RESULTS, SMALL, command_env, fresh_clone, machine, queue_busy, sh

DVC = str(BIN / "dvc")
# Each case's experiment, on the committed run; the judge's own seed too, or no experiment of the
# autoencoder would run its stage.
RUN = ["-S", "seed=7", "-S", "train.epochs=2", "-S", "judge.seed=7"]
TAG = "autoencoder@v0.0.1"
# Each stage killed this many seconds after its script started; the training as soon as its
# first epoch's checkpoint is written (CHECKPOINT), in the middle of its two.
KILLED = {
    "train": 0.0,
    "score": 1.0,
    "threshold": 0.5,
    "evaluate": 0.5,
    "training_figures": 0.3,
    "tsne": 1.0,
    "interpolate": 0.3,
    "denoise": 0.5,
    "judge": 1.0,
    "sample": 0.5,
    "export": 1.5,
    "publish": 0.0,
}
CHECKPOINT = ".checkpoints/train.pt"
UNREPEATED = ("second", "kl_divergence")  # in JSON outputs' keys
# DVCLive's files show the running training's last finished epoch (`dvc exp show` follows it): after
# a crash, the interrupted run's; half-written only if one is cut short.
LIVE_LOG = "dvclive/"
CALIBRATE = ["--onnx", "models/detector.onnx", "--out", "models/site.onnx"]
CALIBRATE_KILLS = 12


def committed_run(root: Path) -> Path:
    """The small run, committed, tagged and pushed with its run cache: what the user had."""
    clone = fresh_clone(root)
    small = [arg for key, value in SMALL.items() for arg in ("-S", f"{key}={value}")]
    sh(DVC, "exp", "run", *small, cwd=clone)
    sh("git", "add", "-A", cwd=clone)
    sh("git", "commit", "-qm", "the small run", cwd=clone)
    sh("git", "tag", "-a", TAG, "-m", "the small run", cwd=clone)
    sh("git", "push", "-q", "origin", "HEAD", TAG, cwd=clone)
    sh(DVC, "push", "--run-cache", cwd=clone)
    return clone


def copy_of(project: Path, where: Path) -> Path:
    shutil.copytree(project, where, symlinks=True)
    return where


def locked_outs(project: Path) -> dict[str, str]:
    """{output: md5} of every output dvc.lock records."""
    stages = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {out["path"]: out["md5"] for stage in stages.values() for out in stage.get("outs", [])}


def state(project: Path) -> dict:
    """What the user has: HEAD, the tags, the committed run's outputs by md5, those of them whole in
    the DVC cache (the others, `cache: false`, are git's)."""
    outs = locked_outs(project)
    return {
        "head": sh("git", "rev-parse", "HEAD", cwd=project).strip(),
        "tags": sh("git", "show-ref", "--tags", cwd=project),
        "outs": outs,
        "cached": {path: md5 for path, md5 in outs.items() if intact(project, md5)},
    }


def lost(project: Path, had: dict) -> list[str]:
    """What of `had` can no longer be had: a cache object gone or not its md5 (a directory's
    listing and every file in it), HEAD or a tag moved."""
    head, tags = (
        sh("git", *args, cwd=project) for args in (["rev-parse", "HEAD"], ["show-ref", "--tags"])
    )
    gone = [name for name, now in (("head", head.strip()), ("tags", tags)) if now != had[name]]
    return gone + [path for path, md5 in had["cached"].items() if not intact(project, md5)]


def intact(project: Path, md5: str) -> bool:
    obj = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    if not obj.is_file() or hashlib.md5(obj.read_bytes()).hexdigest() != md5.removesuffix(".dir"):
        return False
    if md5.endswith(".dir"):
        return all(intact(project, entry["md5"]) for entry in json.loads(obj.read_text()))
    return True


def half_written(project: Path, base: Path, reference: dict) -> list[str]:
    """Files a user would see that no complete run wrote: an atomic write's temporary file
    (`.NAME.*.tmp*`) anywhere in the workspace, an untracked file git shows, an output that is
    neither the committed run's nor the uninterrupted experiment's (timings aside)."""
    found = {
        str(path.relative_to(project))
        for path in project.rglob(".*.tmp*")
        if not {".git", ".dvc"} & set(path.relative_to(project).parts)
    }
    status = sh("git", "status", "--porcelain", "--untracked-files=all", cwd=project)
    found |= {f"{line[3:]} (untracked)" for line in status.splitlines() if line.startswith("??")}
    complete = (base, reference["project"])
    for path in reference["outs"]:
        ours = project / path
        if path.startswith(LIVE_LOG):
            found |= {
                f"{file.relative_to(project)} ({file.stat().st_size} bytes, unreadable)"
                for file in unreadable(ours)
            }
        elif ours.exists() and not any(same(ours, other / path) for other in complete):
            found.add(path)
    return sorted(found)


def unreadable(path: Path) -> list[Path]:
    """The JSON files under `path` that do not parse, and the TSV files with a line cut short."""
    found = []
    for file in [path] if path.is_file() else sorted(path.rglob("*")):
        if not file.is_file() or file.suffix not in (".json", ".tsv"):
            continue
        text = file.read_text()
        if file.suffix == ".json":
            try:
                json.loads(text)
            except ValueError:
                found.append(file)
        elif len({line.count("\t") for line in text.splitlines()}) > 1 or not text.endswith("\n"):
            found.append(file)
    return found


def same(ours: Path, theirs: Path) -> bool:
    """The same file or folder of files, what no two runs repeat aside (`reproduced`)."""
    if ours.is_dir() and theirs.is_dir():
        names = sorted(path.relative_to(ours) for path in ours.rglob("*") if path.is_file())
        listed = sorted(path.relative_to(theirs) for path in theirs.rglob("*") if path.is_file())
        return names == listed and all(same(ours / name, theirs / name) for name in names)
    if not (ours.is_file() and theirs.is_file()):
        return False
    a, b = ours.read_bytes(), theirs.read_bytes()
    return a == b or (untimed(a) is not None and untimed(a) == untimed(b))


def untimed(content: bytes) -> dict | None:
    try:
        data = json.loads(content)
    except ValueError:
        return None
    return reproduced(data) if isinstance(data, dict) else None


def reproduced(data):
    """A JSON output without what no two runs repeat (docs/reference.md, failure behaviour): the
    timings, and the t-SNE's KL divergence in its last digits."""
    if isinstance(data, dict):
        return {
            key: reproduced(value)
            for key, value in data.items()
            if not any(varying in key for varying in UNREPEATED)
        }
    return data


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def recovery(project: Path, command: list[str], reference: dict) -> dict:
    """The recovery command's outcome: its exit status, whether `dvc status` is clean after it
    (check_params is always changed), and the outputs that differ from the uninterrupted run's."""
    done = subprocess.run(command, cwd=project, env=command_env(), capture_output=True, text=True)
    status = sh(DVC, "status", cwd=project).split()
    differing = differs_from(project, reference)
    return {
        "recovery": " ".join([Path(command[0]).name, *command[1:]]),
        "recovery_exit": done.returncode,
        "recovery_error": last_line(done) if done.returncode else "",
        "up_to_date": status == ["check_params:", "always", "changed"],
        "differ_from_uninterrupted": differing,
        "recovered": done.returncode == 0 and not differing,
    }


def differs_from(project: Path, reference: dict) -> list[str]:
    """The outputs in the workspace that are not the uninterrupted run's (timings aside)."""
    theirs = reference["project"]
    return [path for path in reference["outs"] if not same(project / path, theirs / path)]


def last_line(done: subprocess.CompletedProcess) -> str:
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[-1] if lines else ""


def uninterrupted(base: Path, root: Path) -> dict:
    """The experiment run whole, in a copy of its own: what every recovery must end with."""
    project = copy_of(base, root / "uninterrupted")
    sh(DVC, "exp", "run", *RUN, cwd=project)
    return {"project": project, "outs": locked_outs(project)}


def started(command: list[str], project: Path) -> subprocess.Popen:
    """The command in a process group of its own (killed whole, as a crash takes it)."""
    return subprocess.Popen(
        command,
        cwd=project,
        env=command_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def script_running(project: Path, script: str) -> bool:
    """Whether a process runs `script` in `project` (a stage's command)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if script in (proc / "cmdline").read_text() and (proc / "cwd").resolve() == project:
                return True
        except OSError:  # gone meanwhile, or not ours
            continue
    return False


def kill_during(stage: str, base: Path, root: Path, reference: dict) -> dict:
    """`dvc exp run` killed (its whole process group, -9) KILLED[stage] seconds into the stage."""
    project = copy_of(base, root / f"kill-{stage}")
    had = state(project)
    process = started([DVC, "exp", "run", *RUN], project)
    ready = (lambda: (project / CHECKPOINT).exists()) if stage == "train" else lambda: True
    while not (script_running(project, f"stages/{stage}.py") and ready()):
        if process.poll() is not None:
            raise SystemExit(f"dvc exp run ended before {stage} ran, in {project}")
        time.sleep(0.02)
    time.sleep(KILLED[stage])
    mid_stage = script_running(project, f"stages/{stage}.py")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    row = {
        "case": f"kill -9 during {stage}",
        "killed_mid_stage": mid_stage,
        "lost": lost(project, had),
        "half_written": half_written(project, base, reference),
    }
    return row | recovery(project, [DVC, "exp", "run", *RUN], reference)


def corrupt_cache(project: Path) -> list[str]:
    """What `make verify-cache` lists: corrupt objects, results filed under other params."""
    done = subprocess.run(
        [str(BIN / "python"), "tools/verify_cache.py"],
        cwd=project,
        env=command_env(),
        capture_output=True,
        text=True,
    )
    return [] if done.returncode == 0 else done.stdout.strip().splitlines()


def calibrate_killed(base: Path, root: Path) -> dict:
    """`aepipe calibrate` killed at CALIBRATE_KILLS points across its run while it replaces a
    site detector: the detector left is the old one or the new one, whole."""
    project = copy_of(base, root / "calibrate")
    good = good_images(project)
    site = project / "models" / "site.onnx"
    sh(str(BIN / "aepipe"), "calibrate", good, *CALIBRATE, "--false-alarms", "0.1", cwd=project)
    old = site.read_bytes()
    command = [str(BIN / "aepipe"), "calibrate", good, *CALIBRATE, "--false-alarms", "0.05"]
    clock = time.perf_counter()
    sh(*command, cwd=project)
    seconds, new = time.perf_counter() - clock, site.read_bytes()
    site.write_bytes(old)
    outcomes = []
    for kill in range(1, CALIBRATE_KILLS + 1):
        process = started(command, project)
        time.sleep(seconds * kill / (CALIBRATE_KILLS + 1))
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        left = site.read_bytes()
        outcomes.append("old" if left == old else "new" if left == new else "other")
        site.write_bytes(old)
    temporary = [str(p.relative_to(project)) for p in (project / "models").glob(".*.tmp*")]
    again = subprocess.run(command, cwd=project, env=command_env(), capture_output=True)
    return {
        "case": f"aepipe calibrate killed {CALIBRATE_KILLS} times across its {seconds:.1f} s",
        "detector_left": outcomes,
        "lost": [] if "other" not in outcomes else ["models/site.onnx"],
        "half_written": temporary,
        "recovery": "aepipe calibrate ... (the same command)",
        "recovery_exit": again.returncode,
        "recovered": again.returncode == 0 and site.read_bytes() == new,
    }


def good_images(project: Path) -> str:
    """The small run's 512 validation digits, as a line's good parts."""
    import numpy as np

    from aepipe.data.dataset import load_split

    path = project.parent / "good.npy"
    np.save(path, load_split(project / "data" / "raw", "val", 512).images)
    return str(path)


def disk_full(base: Path, root: Path, reference: dict) -> dict:
    """The project on a tmpfs left with room for half of what the experiment writes: it fills
    mid-run. Then the tmpfs grown (space freed) and the same command again."""
    need = tree_bytes(reference["project"]) - tree_bytes(base)
    mount = root / "disk"
    mount.mkdir()
    sh("mount", "-t", "tmpfs", "-o", f"size={4 * tree_bytes(base)}", "tmpfs", str(mount), cwd=root)
    try:
        project = copy_of(base, mount / "aepipe")
        used = int(sh("df", "--output=used", "-B1", str(mount), cwd=root).split()[-1])
        sh("mount", "-o", f"remount,size={used + need // 2}", str(mount), cwd=root)
        had = state(project)
        command = [DVC, "exp", "run", *RUN]
        run = subprocess.run(
            command, cwd=project, env=command_env(), capture_output=True, text=True
        )
        mib = need // 2**20
        row = {
            "case": f"disk full: room for {mib // 2} of the {mib} MiB it writes",
            "exit": run.returncode,
            "error": last_line(run),
            "stage_said": [
                line
                for line in (run.stdout + run.stderr).splitlines()
                if line.startswith("error:") or "Error:" in line
            ],
            "lost": lost(project, had),
            "half_written": half_written(project, base, reference),
            "corrupt_in_cache": corrupt_cache(project),
        }
        sh("mount", "-o", f"remount,size={used + 4 * need}", str(mount), cwd=root)
        return row | recovery(project, command, reference)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def tree_bytes(path: Path) -> int:
    return int(sh("du", "-sb", str(path), cwd=path).split()[0])


def queued(base: Path, root: Path, reference: dict) -> dict:
    """Seeds 7 and 8 queued and run side by side by `dvc queue start -j 2`: seed 7's experiment is
    the uninterrupted run's, to the byte (timings aside)."""
    project = copy_of(base, root / "queue")
    had = state(project)
    sh(DVC, "exp", "run", "--queue", "--name", "seven", *RUN, cwd=project)
    sh(DVC, "exp", "run", "--queue", "--name", "eight", "-S", "seed=8", *RUN[2:], cwd=project)
    sh(DVC, "queue", "start", "-j", "2", cwd=project)
    while queue_busy(project):
        time.sleep(1)
    status = sh(DVC, "queue", "status", cwd=project)
    lost_now, corrupt = lost(project, had), corrupt_cache(project)
    sh(DVC, "exp", "apply", "seven", cwd=project)
    differing = differs_from(project, reference)
    return {
        "case": "dvc queue start -j 2: seeds 7 and 8 side by side",
        "queue_status": status.strip().splitlines(),
        "lost": lost_now,
        "half_written": half_written(project, base, reference),
        "corrupt_in_cache": corrupt,
        "differ_from_uninterrupted": differing,
        "recovered": "Failed" not in status and not differing,
    }


def remote_corrupt(base: Path, root: Path) -> dict:
    """A flipped byte in the DVC remote's copy of the model; a second clone pulls (its remote set up
    by `make remote`: `verify` on); the recovery is the documented one."""
    md5 = locked_outs(base)["models/model.pt"]
    obj = root / "aepipe-dvc-storage" / "files" / "md5" / md5[:2] / md5[2:]
    good = obj.read_bytes()
    obj.chmod(0o644)
    obj.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])
    bob = root / "bob"
    branch = sh("git", "branch", "--show-current", cwd=base).strip()
    sh("git", "clone", "-q", "-b", branch, str(root / "origin.git"), str(bob), cwd=root)
    sh("make", "--no-print-directory", "remote", f"DVC={DVC}", cwd=bob)
    pull = subprocess.run([DVC, "pull"], cwd=bob, env=command_env(), capture_output=True, text=True)
    model = bob / "models" / "model.pt"
    # DVC's verify removes an object that fails its hash where it hashes it: a folder remote's
    # in the remote itself, an S3 remote's in the local cache (tests/test_faults.py)
    left = obj.is_file()
    verify = [str(BIN / "python"), "tools/verify_cache.py", "--remote"]
    found = subprocess.run(verify, cwd=bob, env=command_env(), capture_output=True, text=True)
    row = {
        "case": "a flipped byte in the DVC remote's model object; a second clone pulls",
        "pull_exit": pull.returncode,
        "pull_said": last_line(pull),
        "corrupt_checked_out": model.is_file() and file_md5(model) != md5,
        "corrupt_object_left_in_the_remote": left,
        "found_by": found.stdout.strip().splitlines(),
    }
    sh(*verify, "--remove", cwd=bob)
    sh(DVC, "push", cwd=base)  # the machine that has the good object
    again = subprocess.run([DVC, "pull"], cwd=bob, env=command_env(), capture_output=True)
    return row | {
        "lost": [],
        "half_written": half_written(bob, base, {"outs": {}, "project": base}),
        "recovery": "make verify-cache REMOTE=1 REMOVE=1; make share (where the good copy is)",
        "recovery_exit": again.returncode,
        "recovered": again.returncode == 0 and file_md5(model) == md5,
    }


CASES = {
    "kill": lambda base, root, reference: [
        kill_during(stage, base, root, reference) for stage in KILLED
    ],
    "calibrate": lambda base, root, reference: calibrate_killed(base, root),
    "disk": disk_full,
    "queue": queued,
    "remote": lambda base, root, reference: remote_corrupt(base, root),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"some of {','.join(CASES)}")
    cases = parser.parse_args().cases.split(",")
    root = Path(tempfile.mkdtemp(prefix="aepipe-faults-"))
    base = committed_run(root)
    reference = uninterrupted(base, root)
    rows = []
    for case in cases:
        made = CASES[case](base, root, reference)
        for row in made if isinstance(made, list) else [made]:
            print(json.dumps(row, default=str), flush=True)
            rows.append(row)
    results = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "commit": sh("git", "rev-parse", "--short", "HEAD~1", cwd=base).strip(),  # under the run
        "experiment": RUN,
        "rows": rows,
    }
    write_json(RESULTS / "faults.json", results)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
