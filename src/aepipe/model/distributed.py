"""Data-parallel training with PyTorch's own engine: torchrun starts the processes, DDP syncs
gradients.

One process per GPU (NCCL) or per CPU worker (gloo). Every process sees the same shuffled order
and takes its share of each global batch, so the global batch and the visiting order are those
of a single-process run.
"""

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

# For runs across machines: the number of nodes and the rendezvous host:port shared by all of
# them (the same on every node). Unset: one machine, with a free port chosen by torchrun.
NODES_ENV = "AEPIPE_NNODES"
RENDEZVOUS_ENV = "AEPIPE_RDZV_ENDPOINT"


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


ALONE = World()  # a training in one process


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ


def relaunch_under_torchrun(workers_per_node: int) -> None:
    """Replace this process by torchrun running the same script in `workers_per_node` processes."""
    nodes = os.environ.get(NODES_ENV, "1")
    if nodes == "1":
        rendezvous = ["--standalone"]
    else:
        if RENDEZVOUS_ENV not in os.environ:
            raise RuntimeError(
                f"{NODES_ENV}={nodes} needs {RENDEZVOUS_ENV}=host:port, the same on every node"
            )
        rendezvous = [
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            os.environ[RENDEZVOUS_ENV],
            "--rdzv-id",
            "aepipe",
        ]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        nodes,
        "--nproc-per-node",
        str(workers_per_node),
        *rendezvous,
        *sys.argv,
    ]
    sys.stdout.flush()
    os.execv(sys.executable, command)


def join(device_type: str) -> tuple[World, torch.device | None]:
    """Join the process group torchrun set up; on CUDA, also this process's own GPU."""
    if not launched_by_torchrun():
        return World(), None
    backend = "nccl" if device_type == "cuda" else "gloo"
    device = None
    if device_type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size()), device


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
