"""The README's cross-CPU claim, checked on the CPU that runs the suite: a short training with
dvc.yaml's pinned kernels gives the weights every measured CPU gave
(bench/results/cpu_isa-machines.json)."""

import json
import os
import sys

from conftest import REPO
from dvc_project import ran_stages, run

sys.path.insert(0, str(REPO / "bench"))
from aepipe.cpu_numerics import cpu_identity, numerics_key  # noqa: E402
from cpu_isa import short_training_md5  # noqa: E402

MACHINES = REPO / "bench" / "results" / "cpu_isa-machines.json"


def test_every_measured_cpu_gave_the_locks_model_and_one_short_training():
    rows = json.loads(MACHINES.read_text())
    assert rows and all(row.get("model_is_the_locks") for row in rows), [
        row["name"] for row in rows
    ]
    assert len({row["short_training_md5"] for row in rows}) == 1


def test_a_short_pinned_training_on_this_cpu_gives_the_committed_weights(raw_dir):
    rows = json.loads(MACHINES.read_text())
    committed = rows[0]["short_training_md5"]
    md5 = short_training_md5(raw_dir)
    this = cpu_identity()
    assert md5 == committed, (
        f"this CPU ({this['vendor']} family {this['family']} model {this['model']}, "
        f"{' '.join(this['flags'])}) trains other weights ({md5}) with dvc.yaml's pinned kernels "
        f"than the CPUs measured ({committed}: {'; '.join(row['name'] for row in rows)}), so the "
        "README's claim does not hold here. Record it: make repro, then python bench/cpu_isa.py "
        "--record --model models/model.pt; then pin what differs (dvc.yaml's pinned_cpu) or name "
        "the CPU in docs/reproducibility.md"
    )


def test_the_numerics_key_names_the_vendor_and_the_threads_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    plain = numerics_key()
    assert cpu_identity()["vendor"] in plain and f"{os.cpu_count()} CPUs" in plain
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert numerics_key() == f"{plain}, OMP_NUM_THREADS=3"


def test_the_run_cache_restores_only_what_a_machine_of_the_same_kind_computed(
    own_project, mnist_dir
):
    """Another kind of machine (here: another thread count) reruns a stage whose result this run
    cache holds for one kind; back on that kind, DVC restores it."""
    mirror = str(mnist_dir)
    other = run(["dvc", "repro", "download"], own_project, mirror, OMP_NUM_THREADS="3")
    assert ran_stages(other.stdout) == ["check_params", "download"], other.stdout
    assert "OMP_NUM_THREADS=3" in (own_project / "data" / "params_checked.txt").read_text()
    third = run(["dvc", "repro", "download"], own_project, mirror, OMP_NUM_THREADS="5")
    assert ran_stages(third.stdout) == ["check_params", "download"], third.stdout
    back = run(["dvc", "repro", "download"], own_project, mirror, OMP_NUM_THREADS="3")
    assert (
        ran_stages(back.stdout) == ["check_params"] and "Stage 'download' is cached" in back.stdout
    ), back.stdout
