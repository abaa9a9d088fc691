"""Training-speed levers, each against the training loop as it is, interleaved in one process.

    python bench/studies/train_levers.py [--rounds 6] [--steps 200] [--val-mse-epochs 20]

This machine's speed drifts by ±30 % within minutes, so a lever is only compared with the current
loop measured right beside it: every round runs a block of `--steps` batch-64 training steps of
each variant in turn, each variant with its own model and optimizer (the same initialisation), on
real MNIST from data/raw. Reported: images/s of every block, the median per variant, and its ratio
to the current loop's median. Levers:

- autocast_bf16: the forward pass under torch.autocast(bfloat16) (AMX or AVX-512 BF16 where the CPU
  has them);
- onednn_bf16: float32 convolutions and matrix products computed by oneDNN in bfloat16
  (torch.backends.mkldnn.{conv,matmul}.fp32_precision = "bf16");
- contiguous: the contiguous memory format instead of channels-last;
- native_convs: PyTorch's own convolutions (im2col and a matrix product) instead of oneDNN's, in
  the contiguous layout they work in;
- one_thread: one intra-op thread instead of all cores.

With --val-mse-epochs N, the levers that change the arithmetic (autocast_bf16, onednn_bf16) and the
current loop then each train a fresh model for N epochs' worth of steps, and the final models'
validation MSE is compared (a lever that changes the numbers is only worth it within 1 %).

Results (CPU only: the levers are the CPU's): bench/studies/results/train_levers-cpu.json and a
table on stdout.
"""

import argparse
import contextlib
import statistics
import time
from datetime import date

import torch

from aepipe.atomic import write_json
from aepipe.data.dataset import load_split
from aepipe.devices import to_tensor
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.inference import mean_squared_error
from provenance import REPO, STUDY_RESULTS, machine

LEVERS = ["current", "autocast_bf16", "onednn_bf16", "contiguous", "native_convs", "one_thread"]
BATCH_SIZE = 64


@contextlib.contextmanager
def lever_settings(lever: str):
    """The global settings a lever needs while its block runs; the current loop's afterwards."""
    threads = torch.get_num_threads()
    if lever == "onednn_bf16":
        torch.backends.mkldnn.conv.fp32_precision = torch.backends.mkldnn.matmul.fp32_precision = (
            "bf16"
        )
    if lever == "one_thread":
        torch.set_num_threads(1)
    try:
        with (
            torch.autocast("cpu", dtype=torch.bfloat16)
            if lever == "autocast_bf16"
            else contextlib.nullcontext(),
            torch.backends.mkldnn.flags(enabled=lever != "native_convs"),
        ):
            yield
    finally:
        torch.backends.mkldnn.conv.fp32_precision = torch.backends.mkldnn.matmul.fp32_precision = (
            "none"
        )
        torch.set_num_threads(threads)


class Levers:
    """One model and optimiser per lever, each trained block by block on the same batches."""

    def __init__(self, images: torch.Tensor):
        self.images = images
        self.order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        self.variants = {}

    def fresh(self, lever: str) -> None:
        memory_format = (
            torch.contiguous_format
            if lever in ("contiguous", "native_convs")
            else torch.channels_last
        )
        torch.manual_seed(0)
        model = AutoEncoder(20).to(memory_format=memory_format)
        self.variants[lever] = (
            model,
            torch.optim.Adam(model.parameters(), lr=1e-3, fused=True),
            memory_format,
        )

    def block(self, lever: str, first_step: int, steps: int) -> float:
        """`steps` training steps of the lever's model from `first_step` on; images per second."""
        model, optimizer, memory_format = self.variants[lever]
        started = time.perf_counter()
        with lever_settings(lever):
            for step in range(first_step, first_step + steps):
                start = step * BATCH_SIZE % (len(self.images) - BATCH_SIZE)
                batch = self.images[self.order[start : start + BATCH_SIZE]].contiguous(
                    memory_format=memory_format
                )
                reconstruction, _ = model(batch)
                loss = torch.nn.functional.mse_loss(reconstruction.float(), batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return steps * BATCH_SIZE / (time.perf_counter() - started)


def interleaved_speeds(levers: Levers, rounds: int, steps: int) -> dict[str, list[float]]:
    """Each lever's images per second in every round, the levers taking turns within a round."""
    for lever in LEVERS:
        levers.fresh(lever)
    for lever in LEVERS:  # warm-up: oneDNN builds its kernels on first use
        levers.block(lever, 0, steps)
    speeds = {lever: [] for lever in LEVERS}
    for round_ in range(rounds):
        for lever in LEVERS:
            speeds[lever].append(round(levers.block(lever, (round_ + 1) * steps, steps), 1))
    return speeds


def arithmetic_val_mse(levers: Levers, epochs: int) -> dict:
    """The validation MSE after `epochs` of the reduced-precision levers, against the current
    loop's."""
    val_images = to_tensor(load_split(REPO / "data" / "raw", "val").images, torch.device("cpu"))
    val_mse = {}
    for lever in ("current", "autocast_bf16", "onednn_bf16"):
        levers.fresh(lever)
        levers.block(lever, 0, epochs * (len(levers.images) // BATCH_SIZE))
        val_mse[lever] = mean_squared_error(levers.variants[lever][0], val_images)
    return {
        "epochs": epochs,
        **val_mse,
        **{
            f"{lever}_relative_difference": round(val_mse[lever] / val_mse["current"] - 1, 4)
            for lever in ("autocast_bf16", "onednn_bf16")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=200, help="training steps per block")
    parser.add_argument(
        "--val-mse-epochs", type=int, default=0, help="also train N epochs per arithmetic lever"
    )
    args = parser.parse_args()

    torch.set_flush_denormal(True)  # as aepipe.model.training does
    levers = Levers(
        to_tensor(load_split(REPO / "data" / "raw", "train").images, torch.device("cpu"))
    )
    speeds = interleaved_speeds(levers, args.rounds, args.steps)
    medians = {lever: statistics.median(values) for lever, values in speeds.items()}
    report = {
        "date": date.today().isoformat(),
        "machine": machine(torch.backends.cpu.get_cpu_capability()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "command": "python bench/studies/train_levers.py "
        f"--rounds {args.rounds} --steps {args.steps}",
        "images_per_second": speeds,
        "median_images_per_second": medians,
        "ratio_to_current": {
            lever: round(median / medians["current"], 3) for lever, median in medians.items()
        },
    }
    if args.val_mse_epochs:
        report["val_mse"] = arithmetic_val_mse(levers, args.val_mse_epochs)
        report["command"] += f" --val-mse-epochs {args.val_mse_epochs}"
    write_json(STUDY_RESULTS / "train_levers-cpu.json", report)
    print("| lever | images/s per block | median | vs current |\n|---|---|---|---|")
    for lever in LEVERS:
        print(
            f"| {lever} | {', '.join(f'{v:,.0f}' for v in speeds[lever])} | {medians[lever]:,.0f} "
            f"| {report['ratio_to_current'][lever]:.2f}× |"
        )
    if args.val_mse_epochs:
        print(
            f"validation MSE after {args.val_mse_epochs} epochs: "
            + ", ".join(
                f"{lever} {report['val_mse'][lever]:.6f}"
                for lever in ("current", "autocast_bf16", "onednn_bf16")
            )
        )


if __name__ == "__main__":
    main()
