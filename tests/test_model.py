import pytest
import torch

from aepipe.errors import AepipeError
from aepipe.model.autoencoder import AutoEncoder, load_model, save_model

# The seed's printed architecture, layer by layer: convs 1→16→32→64 (3/3/7), linear 64↔20,
# transposed convs 64→32→16→1 (7/3/3); its weights and biases add up to this many parameters.
SEED_PARAMETER_COUNT = (
    (1 * 16 * 9 + 16)
    + (16 * 32 * 9 + 32)
    + (32 * 64 * 49 + 64)
    + (64 * 20 + 20)
    + (20 * 64 + 64)
    + (64 * 32 * 49 + 32)
    + (32 * 16 * 9 + 16)
    + (16 * 1 * 9 + 1)
)


def test_architecture_is_the_seeds():
    model = AutoEncoder(latent_dim=20)
    assert sum(p.numel() for p in model.parameters()) == SEED_PARAMETER_COUNT == 213_013
    convs = [
        (m.in_channels, m.out_channels, m.kernel_size, m.stride)
        for m in model.encoder
        if isinstance(m, torch.nn.Conv2d)
    ]
    assert convs == [(1, 16, (3, 3), (2, 2)), (16, 32, (3, 3), (2, 2)), (32, 64, (7, 7), (1, 1))]
    assert isinstance(model.decoder[-1], torch.nn.Sigmoid)


@pytest.mark.parametrize("latent_dim", [2, 20])
def test_shapes_and_range(latent_dim):
    model = AutoEncoder(latent_dim)
    images = torch.rand(5, 1, 28, 28)
    latents = model.encode(images)
    assert latents.shape == (5, latent_dim)
    decoded = model.decode(latents)
    assert decoded.shape == (5, 1, 28, 28)
    assert decoded.min() >= 0 and decoded.max() <= 1
    reconstruction, forward_latents = model(images)
    assert torch.equal(forward_latents, latents) and torch.equal(reconstruction, decoded)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = AutoEncoder(latent_dim=7)
    save_model(model, tmp_path / "models" / "model.pt")
    loaded = load_model(tmp_path / "models" / "model.pt")
    images = torch.rand(3, 1, 28, 28)
    assert loaded.latent_dim == 7
    for name, weights in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], weights), name
    # The loaded model runs channels-last on the CPU, which sums in another order: equal up to
    # rounding.
    torch.testing.assert_close(loaded(images)[0], model(images)[0], rtol=0, atol=1e-6)
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["model.pt"], (
        "a temporary file was left behind"
    )


def test_foreign_files_are_refused_clearly(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(
        AepipeError,
        match=r"garbage.pt: not a model checkpoint \(expected the zip archive torch.save writes\)",
    ):
        load_model(garbage)

    pickled_module = tmp_path / "module.pt"
    # a whole pickled object: weights_only must refuse it
    torch.save(AutoEncoder(3), pickled_module)
    with pytest.raises(
        AepipeError, match="module.pt: not a loadable model checkpoint .*Unsupported global"
    ):
        load_model(pickled_module)

    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    with pytest.raises(AepipeError, match="not an aepipe autoencoder checkpoint"):
        load_model(plain)

    with pytest.raises(AepipeError, match="missing.pt: model file not found"):
        load_model(tmp_path / "missing.pt")
