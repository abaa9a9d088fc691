"""What only a CUDA GPU can show: marked `gpu`, left out of `make test`, run by bench/gpu/run.sh on
a lent GPU machine (`pytest -n0 -m gpu tests/test_gpu.py`). Without a GPU they fail rather than
skip."""

import socket

import pytest
import torch

from aepipe.devices import resolve_device, to_tensor
from aepipe.model.autoencoder import AutoEncoder, load_model, save_model
from aepipe.model.distributed import join, leave
from aepipe.model.training import train
from aepipe.params import load_params
from conftest import REPO

pytestmark = pytest.mark.gpu
RECIPE = load_params(REPO / "params.yaml").train.model_copy(
    update={
        "latent_dim": 20,
        "epochs": 2,
        "batch_size": 64,
        "device": "cuda",
        "segmenter": False,
        "segmenter_epochs": 1,
    }
)


def test_auto_and_cuda_pick_the_gpu():
    assert resolve_device("auto").type == "cuda" and resolve_device("cuda").type == "cuda"


def test_training_steps_run_on_the_gpu(raw_dir):
    from aepipe.data.dataset import load_split

    device = resolve_device("cuda")
    images = to_tensor(load_split(raw_dir, "train", 4096).images, device)
    result = train(images[:3584], images[3584:], RECIPE, seed=0, log=lambda line: None)
    assert result.device.startswith("cuda") and next(result.model.parameters()).is_cuda
    assert result.history.val_losses[-1] < result.history.initial_val_loss / 2


def test_a_denoising_run_draws_its_noise_on_the_gpu_from_a_seeded_generator(raw_dir):
    from aepipe.data.dataset import load_split
    from aepipe.noise import noisy_inputs

    images = to_tensor(load_split(raw_dir, "train", 1024).images, resolve_device("cuda"))
    noisy = noisy_inputs(images, 0.5, torch.Generator(device="cuda").manual_seed(0))
    assert noisy.is_cuda and torch.equal(
        noisy, noisy_inputs(images, 0.5, torch.Generator(device="cuda").manual_seed(0))
    )
    result = train(
        images[:896],
        images[896:],
        RECIPE.model_copy(update={"noise_std": 0.5}),
        seed=0,
        log=lambda line: None,
    )
    assert (
        result.model.noise_std == 0.5
        and result.history.val_losses[-1] < result.history.initial_val_loss
    )


def test_a_model_saved_from_the_gpu_loads_on_a_cpu(tmp_path):
    torch.manual_seed(0)
    model = AutoEncoder(20).to("cuda").eval()
    images = torch.rand(8, 1, 28, 28)
    save_model(model, tmp_path / "model.pt")
    on_cpu = load_model(tmp_path / "model.pt", "cpu")
    assert next(on_cpu.parameters()).device.type == "cpu"
    with torch.no_grad():
        assert torch.allclose(on_cpu(images)[0], model(images.cuda())[0].cpu(), atol=1e-5)


def test_nccl_initialises_for_one_process(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {
        "TORCHELASTIC_RUN_ID": "gpu-test",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    world, device = join("cuda")
    try:
        assert (world.rank, world.size, device.type) == (0, 1, "cuda")
        assert torch.distributed.get_backend() == "nccl"
        total = torch.ones(3, device=device)
        torch.distributed.all_reduce(total)
        assert total.tolist() == [1.0, 1.0, 1.0]
    finally:
        leave()
