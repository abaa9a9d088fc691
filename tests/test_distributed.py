"""Data-parallel training: real torchrun + gloo processes on the CPU."""

import json
import signal
import subprocess
import time

import pytest

from stage_workdir import finished, stage_workdir, train_stage


@pytest.mark.pipeline
def test_two_workers_match_one_and_write_outputs_once(tmp_path, raw_dir):
    single = stage_workdir(tmp_path / "single", raw_dir, epochs=3)
    double = stage_workdir(tmp_path / "double", raw_dir, epochs=3, workers=2)
    finished(single)
    output = finished(double)
    assert output.count("epoch 3/3:") == 1, "only the main process reports"

    one = json.loads((single / "reports" / "train.json").read_text())
    two = json.loads((double / "reports" / "train.json").read_text())
    assert one["workers"] == 1 and two["workers"] == 2
    assert two["train_images"] == one["train_images"] == 2048
    # Same global batches in the same order; only the summation order of the gradients differs.
    assert two["final_val_loss"] == pytest.approx(one["final_val_loss"], rel=0.02)
    assert two["final_train_loss"] == pytest.approx(one["final_train_loss"], rel=0.02)
    assert two["final_val_loss"] < two["initial_val_loss"] / 2

    written = sorted(
        str(path.relative_to(double))
        for path in double.rglob("*")
        if path.is_file() and "raw" not in path.parts
    )
    assert written == [
        "data/metrics/train.json",
        "data/train/reconstructions.npz",
        "dvclive/metrics.json",
        "dvclive/plots/custom/batch_mse.json",
        "dvclive/plots/metrics/train_mse.tsv",
        "dvclive/plots/metrics/val_mse.tsv",
        "models/model.pt",
        "params.yaml",
        "reports/train.json",
    ]
    steps = json.loads((double / "dvclive" / "plots" / "custom" / "batch_mse.json").read_text())
    assert [step["step"] for step in steps] == list(range(1, 3 * 32 + 1))


@pytest.mark.pipeline
def test_a_killed_worker_ends_the_run_with_an_error_not_a_hang(tmp_path, raw_dir):
    workdir = stage_workdir(tmp_path / "run", raw_dir, epochs=50, workers=2)
    launcher = train_stage(workdir)
    deadline = time.monotonic() + 60
    # both workers are past the first epoch
    while not (workdir / ".checkpoints" / "train.pt").exists():
        assert launcher.poll() is None and time.monotonic() < deadline, (
            "the run ended before a worker could be killed"
        )
        time.sleep(0.05)
    workers = subprocess.run(
        ["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(workers) == 2
    subprocess.run(["kill", "-KILL", workers[-1]], check=True)
    output, _ = launcher.communicate(timeout=120)  # a hang fails here
    assert launcher.returncode != 0
    assert "exitcode" in output and f"{-signal.SIGKILL}" in output
    assert not (workdir / "models" / "model.pt").exists()
