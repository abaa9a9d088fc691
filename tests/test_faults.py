"""Faults survived: a corrupt object in the DVC cache is found before anything is computed from it,
listed and removed by `make verify-cache`, and computed again; `aepipe score` killed mid-folder
leaves the last complete CSV as it was, and a rerun scores every file once; `make share` with the S3
remote down fails naming it, loses nothing, and pushes once the remote is back."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import REPO
from dvc_project import project_env, ran_stages, run
from team import (
    S3_CREDENTIALS,
    MotoS3,
    free_port,
    make,
    moto_s3,
    publish_to_new_origin,
    use_s3,
)

VERIFY = [sys.executable, str(REPO / "tools" / "verify_cache.py")]


def locked_md5(project, path: str) -> str:
    stages = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return next(
        out["md5"]
        for stage in stages.values()
        for out in stage.get("outs", [])
        if out["path"] == path
    )


def test_a_flipped_byte_in_the_cache_is_never_computed_from_and_is_found_and_recomputed(
    own_project, mnist_dir
):
    mirror, model = str(mnist_dir), own_project / "models" / "model.pt"
    md5 = locked_md5(own_project, "models/model.pt")
    cached = own_project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    os.chmod(cached, 0o644)
    corrupt = bytearray(cached.read_bytes())
    corrupt[1000] ^= 0xFF
    cached.write_bytes(bytes(corrupt))
    model.unlink()
    run(["dvc", "checkout", "models/model.pt"], own_project, mirror)
    assert hashlib.md5(model.read_bytes()).hexdigest() != md5, (
        "DVC checks objects out without hashing them"
    )

    # DVC records the checked-out file under the object's name: only a run (a forced one here, an
    # experiment that changes a scoring param in use) reads it, and the stage refuses it.
    refused = run(
        ["dvc", "repro", "--single-item", "--force", "score"], own_project, mirror, check=False
    )
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "make verify-cache REMOVE=1" in said, said
    assert (
        f"models/model.pt: md5 {hashlib.md5(corrupt).hexdigest()}, dvc.lock records {md5}" in said
    ), said

    found = subprocess.run(VERIFY, cwd=own_project, capture_output=True, text=True)
    assert found.returncode == 1 and f"{md5[2:]}: a corrupt cache object" in found.stdout, (
        found.stdout + found.stderr
    )
    removed = subprocess.run([*VERIFY, "--remove"], cwd=own_project, capture_output=True, text=True)
    assert removed.returncode == 0 and not cached.exists(), removed.stdout + removed.stderr

    model.unlink()
    again = run(["dvc", "repro", "train"], own_project, mirror)
    assert "train" in ran_stages(again.stdout), "the run cache's object is gone: trained again"
    assert hashlib.md5(model.read_bytes()).hexdigest() == md5 and cached.exists()
    run(["dvc", "repro", "--single-item", "--force", "score"], own_project, mirror)
    assert json.loads((own_project / "models" / "anomaly_score.json").read_text())["method"]


def test_score_killed_mid_folder_keeps_the_old_csv_and_a_rerun_scores_each_file_once(
    project, tmp_path
):
    from PIL import Image

    from aepipe.data.dataset import load_split

    scans = tmp_path / "night"
    scans.mkdir()
    for index, digit in enumerate(load_split(project / "data" / "raw", "val", 4000).images):
        Image.fromarray(digit).save(scans / f"scan{index:04d}.png")
    out = tmp_path / "night.csv"
    out.write_text("last night's scores\n")
    partial = out.with_name("night.csv.partial")
    command = [str(Path(sys.executable).parent / "aepipe"), "score", str(scans), "--out", str(out)]
    scoring = subprocess.Popen(
        command, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    # a batch of 256 is written
    while not (partial.exists() and partial.read_text().count("\n") > 257):
        assert scoring.poll() is None, scoring.stderr.read()
        time.sleep(0.01)
    os.kill(scoring.pid, signal.SIGKILL)
    scoring.wait()

    assert out.read_text() == "last night's scores\n", "the last complete CSV was touched"
    done = partial.read_text().splitlines()[1:]
    assert 256 <= len(done) < 4000, "killed mid-folder"
    whole = [line.split(",")[0] for line in done if line.count(",") == 4]
    assert whole == [str(scans / f"scan{index:04d}.png") for index in range(len(whole))]

    again = subprocess.run(command, cwd=project, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    sources = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert (
        sorted(sources) == sorted(str(path) for path in scans.glob("*.png"))
        and not partial.exists()
    )


def test_make_share_with_the_s3_remote_down_fails_loses_nothing_and_pushes_once_it_is_back(
    own_project, tmp_path
):
    project, port = own_project, free_port()
    run(["git", "init", "-q", "--bare", str(tmp_path / "origin.git")], tmp_path, None)
    run(["git", "remote", "add", "origin", str(tmp_path / "origin.git")], project, None)
    use_s3(project, f"http://127.0.0.1:{port}")  # nothing listens there yet: the remote is down
    run(["dvc", "remote", "modify", "--local", "s3", "connect_timeout", "2"], project, None)
    cached = sorted(path.name for path in (project / ".dvc" / "cache" / "files" / "md5").rglob("*"))
    model = (project / "models" / "model.pt").read_bytes()

    down = run(
        ["make", "--no-print-directory", "-o", "setup", "share"],
        project,
        None,
        check=False,
        **S3_CREDENTIALS,
        **GONE,
    )
    assert down.returncode != 0 and f"127.0.0.1:{port}" in down.stdout + down.stderr, (
        down.stdout + down.stderr
    )
    assert (
        sorted(path.name for path in (project / ".dvc" / "cache" / "files" / "md5").rglob("*"))
        == cached
    )
    assert (project / "models" / "model.pt").read_bytes() == model

    with moto_s3(port) as moto:
        make("share", project, S3_CREDENTIALS)  # the same command again, once the remote is back
        stored = {
            item["Key"].split("/")[-1]
            for item in moto.s3.list_objects_v2(Bucket="aepipe-cache")["Contents"]
        }
    assert locked_md5(project, "models/model.pt")[2:] in stored


def test_the_s3_remote_stopped_mid_push_and_mid_pull_leaves_nothing_half_and_the_command_finishes(
    own_project, tmp_path
):
    alice, port, recording = own_project, free_port(), tmp_path / "moto-requests.jsonl"
    run(["git", "add", "-A"], alice, None)
    run(["git", "commit", "-qm", "small run"], alice, None)
    origin = publish_to_new_origin(alice, tmp_path)
    slow_s3_remote(alice, port)
    objects = cache_objects(alice)
    with moto_s3(port, recording) as moto:
        sharing = in_background(["make", "--no-print-directory", "-o", "setup", "share"], alice)
        stop_after(moto, recording, "PUT", objects=3)
        assert sharing.wait(timeout=300) != 0, "a push into a stopped remote fails"
    assert cache_objects(alice) == objects, "nothing of Alice's is lost"
    with moto_s3(port, recording) as moto:  # started again, holding what it held
        assert 3 <= len(stored(moto)) < len(objects), "stopped mid-push"
        make("share", alice, S3_CREDENTIALS)  # the same command
        assert set(objects) <= stored(moto)

    bob = tmp_path / "bob"
    run(["git", "clone", "-q", str(origin), str(bob)], tmp_path, None)
    slow_s3_remote(bob, port)
    with moto_s3(port, recording) as moto:
        pulling = in_background(["make", "--no-print-directory", "-o", "setup", "pull"], bob)
        stop_after(moto, recording, "GET", objects=3)
        assert pulling.wait(timeout=300) != 0, "a pull from a stopped remote fails"
    # Each output whole or not there yet (in the cache or not): none modified, that is half-written.
    states = changed(bob)
    assert states and set(states.values()) <= {"deleted", "not in cache"}, states
    verified = subprocess.run(VERIFY, cwd=bob, capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with moto_s3(port, recording):
        make("pull", bob, S3_CREDENTIALS)  # the same command
    assert changed(bob) == {}


# For the commands run while the remote is down or stopped under them: botocore's one try per
# request, where its default five, backing off, take 2.5 minutes to give up on a small run's cache
# (the failure, and what it leaves, are the same).
GONE = {"AWS_MAX_ATTEMPTS": "1"}


def slow_s3_remote(clone: Path, port: int) -> None:
    """The S3 remote, one object at a time (so that a stop lands between objects), and a stopped
    server found within seconds."""
    use_s3(clone, f"http://127.0.0.1:{port}")
    for option, value in (("jobs", "1"), ("connect_timeout", "2")):
        run(["dvc", "remote", "modify", "--local", "s3", option, value], clone, None)


def in_background(command: list[str], cwd: Path) -> subprocess.Popen:
    """A command that the test stops the remote under."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=project_env(None, **S3_CREDENTIALS, **GONE),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_after(moto: MotoS3, recording: Path, method: str, objects: int) -> None:
    """Kills the server (SIGKILL: the remote gone mid-transfer) once it has been sent `objects`
    more `method` requests for cache objects than it had when called."""
    start, deadline = transfers(recording, method), time.monotonic() + 120
    while transfers(recording, method) < start + objects:
        assert time.monotonic() < deadline, f"no {objects} {method} requests in 120 s"
        time.sleep(0.02)
    moto.server.kill()
    moto.server.wait()


def transfers(recording: Path, method: str) -> int:
    if not recording.exists():
        return 0
    # The server is writing this file as we read it: a last line without its newline is not whole.
    lines = recording.read_text().split("\n")[:-1]
    requests = (json.loads(line) for line in lines if line)
    return sum(r["method"] == method and "/files/md5/" in r["url"] for r in requests)


def stored(moto: MotoS3) -> set[str]:
    """The cache objects the remote holds, as `xx/yyyy…` of their md5."""
    listed = moto.s3.list_objects_v2(Bucket="aepipe-cache").get("Contents", [])
    return {"/".join(item["Key"].split("/")[-2:]) for item in listed if "/md5/" in item["Key"]}


def cache_objects(project: Path) -> dict[str, str]:
    """{`xx/yyyy…`: the md5 of its bytes} of every object in the project's DVC cache."""
    root = project / ".dvc" / "cache" / "files" / "md5"
    return {
        str(path.relative_to(root)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file()
    }


def changed(project: Path) -> dict[str, str]:
    """{path: deleted, modified, …} of each output (and each stage's dep) `dvc status` finds not as
    dvc.lock records it."""
    stages = json.loads(run(["dvc", "status", "--json"], project, None).stdout)
    return {
        path: state
        for entries in stages.values()
        for entry in entries
        if isinstance(entry, dict)
        for paths in entry.values()
        for path, state in paths.items()
    }


def test_a_corrupt_object_in_the_s3_remote_is_refused_found_removed_and_pushed_again(
    own_project, tmp_path
):
    project, port = own_project, free_port()
    md5 = locked_md5(project, "models/model.pt")
    key = f"pipeline/files/md5/{md5[:2]}/{md5[2:]}"
    cached = project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    model = project / "models" / "model.pt"
    verify = [sys.executable, str(REPO / "tools" / "verify_cache.py"), "--remote"]
    with moto_s3(port) as moto:
        use_s3(project, f"http://127.0.0.1:{port}")
        run(["dvc", "remote", "modify", "--local", "s3", "verify", "true"], project, None)
        run(["dvc", "push"], project, None, **S3_CREDENTIALS)
        good = cached.read_bytes()
        moto.s3.put_object(Bucket="aepipe-cache", Key=key, Body=good[:1000] + b"\0" + good[1001:])
        cached.unlink()  # a colleague's clone: the model is only in the remote
        model.unlink()

        pulled = run(["dvc", "pull"], project, None, check=False, **S3_CREDENTIALS)
        assert pulled.returncode != 0 and "models/model.pt" in pulled.stdout + pulled.stderr
        assert not model.exists(), "a remote with verify checks out no corrupt object"

        env = {**os.environ, **S3_CREDENTIALS}
        found = subprocess.run(verify, cwd=project, capture_output=True, text=True, env=env)
        assert found.returncode == 1, found.stdout + found.stderr
        assert f"{md5[2:]}: a corrupt object in the DVC remote" in found.stdout
        removed = subprocess.run(
            [*verify, "--remove"], cwd=project, capture_output=True, text=True, env=env
        )
        assert removed.returncode == 0 and "removed 1 corrupt" in removed.stdout, removed.stdout

        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(good)  # the good copy, on the machine that computed it
        run(["dvc", "push"], project, None, **S3_CREDENTIALS)
        cached.unlink()
        run(["dvc", "pull"], project, None, **S3_CREDENTIALS)
        assert hashlib.md5(model.read_bytes()).hexdigest() == md5


def test_the_readmes_remote_hashes_what_it_pulls(own_project):
    run(["make", "--no-print-directory", "remote"], own_project, None)
    verify = run(["dvc", "config", "--local", "remote.local.verify"], own_project, None)
    assert verify.stdout.strip() == "true", "make setup's remote checks out no corrupt object"


def test_no_room_to_write_is_found_behind_a_librarys_own_error():
    import errno

    from aepipe.entrypoint import disk_full

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:  # as torch's zip writer does
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos") from None
    except RuntimeError as error:
        assert error.__cause__ is None and disk_full(error).errno == errno.ENOSPC
    assert disk_full(RuntimeError("a bug")) is None
