"""Train the autoencoder on images held as one tensor on the device, batching by indexing.

With train.noise_std > 0 it is a denoising autoencoder: each training image gets Gaussian noise of
its own std, drawn uniformly from [0, noise_std], and the loss compares the reconstruction of the
noisy image with the clean one. Validation always reconstructs clean images.
"""

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

from aepipe.devices import EVAL_BATCH_SIZE, as_floats, preferred_memory_format, to_numpy_images
from aepipe.errors import AepipeError
from aepipe.model.augmentation import augment, augmenting
from aepipe.model.autoencoder import AutoEncoder
from aepipe.model.checkpoints import load_resume_state, save_resume_state
from aepipe.model.distributed import ALONE, World
from aepipe.model.inference import mean_squared_error, reconstruct
from aepipe.noise import noisy_inputs
from aepipe.params import TrainParams
from aepipe.similarity import ssim

RECONSTRUCTION_SAMPLES = 16  # first validation images whose reconstruction is kept every epoch
LOSSES = {
    "mse": torch.nn.functional.mse_loss,
    "ssim": lambda reconstruction, image: 1 - ssim(reconstruction, image).mean(),
}


class TrainingDiverged(AepipeError):
    pass


@dataclass
class History:
    """The one record of a run's losses, kept as it trains; a checkpoint saves it and a resumed run
    restores it."""

    epoch: int  # epochs completed
    # (epochs, steps): the training loss of every step, against clean images
    batch_losses: torch.Tensor
    train_losses: list[float]  # per epoch: mean of that epoch's batch losses
    val_losses: list[float]  # per epoch: mean squared error over the whole validation set
    initial_val_loss: float | None  # before the first step, for comparison
    sample_reconstructions: list[torch.Tensor]  # per epoch: (RECONSTRUCTION_SAMPLES, C, H, W)
    step_seconds: float = 0.0  # in training steps
    seconds: float = 0.0  # in all, validation included

    def latest(self) -> str:
        return f"train loss {self.train_losses[-1]:.6f}, val loss {self.val_losses[-1]:.6f}"


@dataclass
class TrainingResult:
    """A finished run: the model (in eval mode) and its History, with what the train stage writes
    beside."""

    model: AutoEncoder
    history: History
    # (RECONSTRUCTION_SAMPLES, H, W) or, in colour, (RECONSTRUCTION_SAMPLES, H, W, C)
    sample_images: np.ndarray
    images_per_second: float  # training steps only
    device: str

    @property
    def sample_reconstructions(self) -> np.ndarray:
        """(epochs, RECONSTRUCTION_SAMPLES, …) as sample_images."""
        return np.stack([to_numpy_images(epoch) for epoch in self.history.sample_reconstructions])


def train(
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    params: TrainParams,
    seed: int,
    log: Callable[[str], None] = print,
    checkpoint: Path | None = None,
    world: World = ALONE,
    on_epoch: Callable[[History, int], None] | None = None,
) -> TrainingResult | None:
    """Train from scratch, or resume from `checkpoint` if it was saved by a run with the same
    inputs. Images: (N, C, H, W) floats in [0, 1], or uint8 pixels converted a batch at a time (less
    memory).

    With a `checkpoint` path, the state after every epoch is saved there, so a killed run resumes
    from its last completed epoch and ends exactly as an uninterrupted one would (on a CPU).
    In a data-parallel `world`, each process trains on its share of every global batch; only the
    main process validates, checkpoints and gets the result (the others get None). `on_epoch` gets
    the history and each finished epoch's index (0-based) as soon as its losses are known, on the
    main process; a resumed run first replays the epochs it restored, so a logger always sees them
    all.
    """
    device = train_images.device
    model, optimizer = _new_model(params, seed, train_images.shape[1:], device)
    # the order of the images; the noise has generators of its own
    shuffle = torch.Generator().manual_seed(seed)
    fingerprint = (
        _fingerprint(params, seed, world, train_images, val_images) if checkpoint else None
    )
    saved = load_resume_state(checkpoint, fingerprint, log) if checkpoint else None
    history = (
        _restore(saved, model, optimizer, shuffle, log, on_epoch)
        if saved
        else _new_history(params, len(train_images), model, val_images, world)
    )
    trainee = _across(model, world)
    started = time.perf_counter() - history.seconds
    for epoch in range(history.epoch, params.epochs):
        epoch_started = time.perf_counter()
        noise = (
            _noise_generator(seed, epoch, world.rank, device)
            if params.noise_std or augmenting(params)
            else None
        )
        epoch_losses = _train_epoch(
            trainee, optimizer, train_images, params, shuffle, noise, world, epoch
        )
        history.step_seconds += time.perf_counter() - epoch_started
        if not world.is_main:
            continue
        _record_epoch(history, epoch, epoch_losses, model, val_images)
        history.seconds = time.perf_counter() - started
        log(f"epoch {epoch + 1}/{params.epochs}: {history.latest()}")
        if on_epoch:
            on_epoch(history, epoch)
        if checkpoint:
            state = {"model": model, "optimizer": optimizer, "shuffle": shuffle}
            save_resume_state(checkpoint, fingerprint, _resume_state(**state, history=history))
    if not world.is_main:
        return None
    return _result(
        model, history, val_images, len(train_images) * params.epochs, time.perf_counter() - started
    )


def _across(model: AutoEncoder, world: World) -> torch.nn.Module:
    """The model as the processes of `world` train it: DDP averages their gradients after each
    backward pass."""
    if world.size == 1:
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def _fingerprint(params: TrainParams, seed: int, world: World, *images: torch.Tensor) -> dict:
    """What a checkpoint must have been saved with to be resumed: the same params, seed, device,
    processes and images."""
    return {
        **params.model_dump(),
        "seed": seed,
        "device": images[0].device.type,
        "processes": world.size,
        "images": _digest(*images),
    }


def _resume_state(model, optimizer, shuffle: torch.Generator, history: History) -> dict:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "shuffle": shuffle.get_state(),
        "history": vars(history),
    }


def _new_model(
    params: TrainParams, seed: int, image_shape: tuple[int, ...], device: torch.device
) -> tuple[AutoEncoder, torch.optim.Optimizer]:
    if device.type == "cpu":
        # Near-zero activations turn into denormal floats after a few epochs and slow the
        # convolutions by about half; flushing them to zero leaves the losses unchanged.
        torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    channels, side, _ = image_shape
    model = AutoEncoder(params.latent_dim, side, channels).to(
        device, memory_format=preferred_memory_format(device)
    )
    model.noise_std = params.noise_std
    # One fused kernel for the whole parameter update instead of a loop over tensors.
    optimizer = torch.optim.Adam(
        model.parameters(), lr=params.lr, weight_decay=params.weight_decay, fused=True
    )
    return model, optimizer


def _new_history(
    params: TrainParams, n_train: int, model: AutoEncoder, val_images: torch.Tensor, world: World
) -> History:
    steps = -(-n_train // params.batch_size)
    initial_val_loss = mean_squared_error(model, val_images) if world.is_main else None
    return History(0, torch.zeros(params.epochs, steps), [], [], initial_val_loss, [])


def _restore(saved: dict, model, optimizer, shuffle: torch.Generator, log, on_epoch) -> History:
    """Load a checkpoint's state into the run, and replay its epochs to `on_epoch`."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    shuffle.set_state(saved["shuffle"])
    history = History(**saved["history"])
    log(f"resuming from the checkpoint after epoch {history.epoch}/{len(history.batch_losses)}")
    if on_epoch:
        for done in range(history.epoch):
            on_epoch(history, done)
    return history


def _train_epoch(
    trainee,
    optimizer,
    images: torch.Tensor,
    params: TrainParams,
    shuffle: torch.Generator,
    noise: torch.Generator | None,
    world: World,
    epoch: int,
) -> torch.Tensor:
    """One pass over the images in a shuffled order; the loss of every global batch, on the CPU."""
    trainee.train()
    memory_format = preferred_memory_format(images.device)
    batch_size, steps = params.batch_size, -(-len(images) // params.batch_size)
    order = torch.randperm(len(images), generator=shuffle).to(images.device)
    losses = torch.zeros(steps, device=images.device)  # stays on the device: no sync per step
    progress = tqdm(
        range(steps),
        desc=f"epoch {epoch + 1}/{params.epochs}",
        leave=False,
        disable=None if world.is_main else True,
    )
    for step in progress:
        global_batch = order[step * batch_size : (step + 1) * batch_size]
        indices = (
            global_batch if world.size == 1 else global_batch.tensor_split(world.size)[world.rank]
        )
        clean = as_floats(images[indices]).contiguous(memory_format=memory_format)
        if augmenting(params):
            clean = augment(clean, params, noise)
        inputs = noisy_inputs(clean, params.noise_std, noise) if params.noise_std else clean
        reconstruction, _ = trainee(inputs)
        loss = LOSSES[params.loss](reconstruction, clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[step] = loss.detach()
    if world.size > 1:
        losses = _global_batch_means(losses, len(images), batch_size, world)
    losses = losses.cpu()  # the one sync of the epoch
    _stop_if_diverged(losses, epoch)
    return losses


def _record_epoch(
    history: History, epoch: int, losses: torch.Tensor, model: AutoEncoder, val_images: torch.Tensor
) -> None:
    history.batch_losses[epoch] = losses
    history.train_losses.append(losses.mean().item())
    history.val_losses.append(mean_squared_error(model, val_images))
    history.sample_reconstructions.append(
        reconstruct(model, val_images[:RECONSTRUCTION_SAMPLES]).cpu()
    )
    history.epoch = epoch + 1


def _result(
    model: AutoEncoder,
    history: History,
    val_images: torch.Tensor,
    images_trained: int,
    seconds: float,
) -> TrainingResult:
    history.seconds = seconds
    return TrainingResult(
        model.eval(),
        history,
        to_numpy_images(as_floats(val_images[:RECONSTRUCTION_SAMPLES])),
        images_trained / history.step_seconds,
        str(val_images.device),
    )


def _noise_generator(seed: int, epoch: int, rank: int, device: torch.device) -> torch.Generator:
    """The generator of one epoch's input noise on one process, on the training device: seeded by
    (seed, epoch, process), so a resumed run draws exactly what an uninterrupted one would have."""
    entropy = np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(entropy))


def _global_batch_means(
    local_losses: torch.Tensor, n_train: int, batch_size: int, world: World
) -> torch.Tensor:
    """Each step's loss over its whole global batch, from every process's loss on its share."""
    global_sizes = torch.full(local_losses.shape, batch_size, device=local_losses.device)
    global_sizes[-1] = n_train - batch_size * (len(local_losses) - 1)
    # tensor_split gives the first (size % processes) processes one image more than the others.
    local_sizes = global_sizes // world.size + (world.rank < global_sizes % world.size).long()
    weighted = local_losses * local_sizes
    dist.all_reduce(weighted)
    return weighted / global_sizes


def _digest(*tensors: torch.Tensor) -> str:
    """SHA-256 of the tensors' values: a checkpoint resumes only on the very images it was trained
    on. A batch at a time: a contiguous copy of a large image set would hold it twice more."""
    sha = hashlib.sha256()
    for tensor in tensors:
        for chunk in tensor.detach().split(EVAL_BATCH_SIZE):
            sha.update(chunk.cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def _stop_if_diverged(epoch_losses: torch.Tensor, epoch: int) -> None:
    bad = torch.nonzero(~torch.isfinite(epoch_losses))
    if len(bad):
        step = int(bad[0])
        raise TrainingDiverged(
            f"training diverged: loss is {epoch_losses[step].item()} at epoch {epoch + 1}, step "
            f"{step + 1}; no model was written (try a smaller train.lr)"
        )
