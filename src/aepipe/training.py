"""Train the autoencoder on images held as one tensor on the device, batching by indexing."""

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from aepipe.checkpoints import torch_save
from aepipe.devices import preferred_memory_format
from aepipe.distributed import World
from aepipe.errors import AepipeError
from aepipe.model import AutoEncoder
from aepipe.params import TrainParams
from aepipe.reconstruction import mean_squared_error, reconstruct

RECONSTRUCTION_SAMPLES = 16  # first validation images whose reconstruction is kept every epoch


class TrainingDiverged(AepipeError):
    pass


@dataclass
class EpochLosses:
    """What one finished epoch adds to the loss history."""

    epoch: int  # 1-based
    batch_losses: np.ndarray  # the training loss of each step of this epoch
    train_loss: float  # their mean
    val_loss: float  # mean squared error over the whole validation set


@dataclass
class TrainingResult:
    model: AutoEncoder
    batch_losses: np.ndarray  # (epochs, steps): the training loss of every step
    train_losses: list[float]  # per epoch: mean of that epoch's batch losses
    val_losses: list[float]  # per epoch: mean squared error over the whole validation set
    initial_val_loss: float  # before the first step, for comparison
    sample_images: np.ndarray  # (RECONSTRUCTION_SAMPLES, 28, 28)
    sample_reconstructions: np.ndarray  # (epochs, RECONSTRUCTION_SAMPLES, 28, 28)
    seconds: float  # the whole run, validation included
    images_per_second: float  # training steps only
    device: str


def train(
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    params: TrainParams,
    seed: int,
    log: Callable[[str], None] = print,
    checkpoint: Path | None = None,
    world: World = World(),
    on_epoch: Callable[[EpochLosses], None] | None = None,
) -> TrainingResult | None:
    """Train from scratch, or resume from `checkpoint` if it was saved by a run with the same inputs.

    With a `checkpoint` path, the state after every epoch is saved there, so a killed run resumes
    from its last completed epoch and ends exactly as an uninterrupted one would (on a CPU).
    In a data-parallel `world`, each process trains on its share of every global batch; only the
    main process validates, checkpoints and gets the result (the others get None). `on_epoch` gets
    each finished epoch's losses as soon as they are known, on the main process; a resumed run
    first replays those of the epochs it restored, so a logger always sees the whole history.
    """
    device = train_images.device
    if device.type == "cpu":
        # Near-zero activations turn into denormal floats after a few epochs and slow the
        # convolutions by about half; flushing them to zero leaves the losses unchanged.
        torch.set_flush_denormal(True)
    memory_format = preferred_memory_format(device)
    torch.manual_seed(seed)
    model = AutoEncoder(params.latent_dim).to(device, memory_format=memory_format)
    # One fused kernel for the whole parameter update instead of a loop over tensors.
    optimizer = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay, fused=True)
    shuffle = torch.Generator().manual_seed(seed)  # the only randomness after initialisation

    n_train, batch_size = len(train_images), params.batch_size
    steps = -(-n_train // batch_size)
    samples = val_images[:RECONSTRUCTION_SAMPLES]
    fingerprint = {**params.model_dump(), "seed": seed, "device": device.type, "processes": world.size,
                   "images": _digest(train_images, val_images)} if checkpoint else None
    history = {
        "epoch": 0,
        "batch_losses": torch.zeros(params.epochs, steps),
        "train_losses": [],
        "val_losses": [],
        "initial_val_loss": None,
        "sample_reconstructions": [],
        "step_seconds": 0.0,
        "seconds": 0.0,
    }
    saved = _load_checkpoint(checkpoint, fingerprint, log) if checkpoint else None
    if saved:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        shuffle.set_state(saved["shuffle"])
        history = saved["history"]
        log(f"resuming from the checkpoint after epoch {history['epoch']}/{params.epochs}")
        for done in range(history["epoch"]):
            _report_epoch(on_epoch, done, history)
    elif world.is_main:
        history["initial_val_loss"] = mean_squared_error(model, val_images)
    batch_losses = history["batch_losses"].to(device)
    started = time.perf_counter() - history["seconds"]
    # DDP averages the gradients of all processes after each backward pass.
    trainee = model if world.size == 1 else DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    for epoch in range(history["epoch"], params.epochs):
        model.train()
        order = torch.randperm(n_train, generator=shuffle).to(device)
        epoch_started = time.perf_counter()
        progress = tqdm(range(steps), desc=f"epoch {epoch + 1}/{params.epochs}", leave=False,
                        disable=None if world.is_main else True)
        for step in progress:
            global_batch = order[step * batch_size : (step + 1) * batch_size]
            indices = global_batch if world.size == 1 else global_batch.tensor_split(world.size)[world.rank]
            batch = train_images[indices].contiguous(memory_format=memory_format)
            reconstruction, _ = trainee(batch)
            loss = torch.nn.functional.mse_loss(reconstruction, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            batch_losses[epoch, step] = loss.detach()  # stays on the device: no sync per step
        if world.size > 1:
            batch_losses[epoch] = _global_batch_means(batch_losses[epoch], n_train, batch_size, world)
        epoch_losses = batch_losses[epoch].cpu()  # the one sync of the epoch
        history["step_seconds"] += time.perf_counter() - epoch_started
        _stop_if_diverged(epoch_losses, epoch)
        if not world.is_main:
            continue

        history["train_losses"].append(epoch_losses.mean().item())
        history["val_losses"].append(mean_squared_error(model, val_images))
        history["sample_reconstructions"].append(reconstruct(model, samples)[:, 0].cpu())
        history["epoch"] = epoch + 1
        history["seconds"] = time.perf_counter() - started
        log(f"epoch {epoch + 1}/{params.epochs}: train loss {history['train_losses'][-1]:.6f}, "
            f"val loss {history['val_losses'][-1]:.6f}")
        history["batch_losses"] = batch_losses.cpu()
        _report_epoch(on_epoch, epoch, history)
        if checkpoint:
            _save_checkpoint(checkpoint, fingerprint, model, optimizer, shuffle, history)

    if not world.is_main:
        return None
    return TrainingResult(
        model=model.eval(),
        batch_losses=batch_losses.cpu().numpy(),
        train_losses=history["train_losses"],
        val_losses=history["val_losses"],
        initial_val_loss=history["initial_val_loss"],
        sample_images=samples[:, 0].cpu().numpy(),
        sample_reconstructions=torch.stack(history["sample_reconstructions"]).numpy(),
        seconds=time.perf_counter() - started,
        images_per_second=params.epochs * n_train / history["step_seconds"],
        device=str(device),
    )


def _report_epoch(on_epoch: Callable[[EpochLosses], None] | None, epoch: int, history: dict) -> None:
    if on_epoch:
        on_epoch(EpochLosses(epoch + 1, history["batch_losses"][epoch].numpy(), history["train_losses"][epoch],
                             history["val_losses"][epoch]))


def _global_batch_means(local_losses: torch.Tensor, n_train: int, batch_size: int, world: World) -> torch.Tensor:
    """Each step's loss over its whole global batch, from every process's loss on its share."""
    global_sizes = torch.full(local_losses.shape, batch_size, device=local_losses.device)
    global_sizes[-1] = n_train - batch_size * (len(local_losses) - 1)
    # tensor_split gives the first (size % processes) processes one image more than the others.
    local_sizes = global_sizes // world.size + (world.rank < global_sizes % world.size).long()
    weighted = local_losses * local_sizes
    dist.all_reduce(weighted)
    return weighted / global_sizes


def _digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' values: a checkpoint resumes only on the very images it was trained on."""
    sha = hashlib.sha256()
    for tensor in tensors:
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def _save_checkpoint(path: Path, fingerprint: dict, model, optimizer, shuffle: torch.Generator, history: dict) -> None:
    state = {"fingerprint": fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "shuffle": shuffle.get_state(), "history": history}
    torch_save(state, path)


def _load_checkpoint(path: Path, fingerprint: dict, log: Callable[[str], None]) -> dict | None:
    """The saved state if `path` holds a checkpoint of a run with the same inputs, else None."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a foreign or damaged file is not worth stopping for: start afresh
        log(f"ignoring unreadable checkpoint {path}: {type(error).__name__}")
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint:
        log(f"ignoring checkpoint {path}: it was saved by a run with other parameters or data")
        return None
    return saved


def _stop_if_diverged(epoch_losses: torch.Tensor, epoch: int) -> None:
    bad = torch.nonzero(~torch.isfinite(epoch_losses))
    if len(bad):
        step = int(bad[0])
        raise TrainingDiverged(
            f"training diverged: loss is {epoch_losses[step].item()} at epoch {epoch + 1}, step {step + 1}; "
            "no model was written (try a smaller train.lr)"
        )
