"""sapkit.training.ssl: Tang et al. pretext tasks and losses on both backbone kinds."""

from __future__ import annotations

import math

import pytest
import torch

from sapkit.config import ModelConfig, SSLConfig
from sapkit.errors import ConfigError
from sapkit.networks.factory import build_model
from sapkit.training.ssl import SSLModel, drop_voxels, nt_xent, rotate_views, ssl_losses, swap_patches


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_drop_voxels_fraction_and_determinism():
    x = torch.full((4, 2, 16, 16, 16), 5.0)  # noise lies in [0, 1): dropped voxels are < 5
    state = torch.get_rng_state()
    y = drop_voxels(x, drop_ratio=0.3, block=4, generator=_gen(1))
    assert torch.equal(torch.get_rng_state(), state)  # no global RNG
    assert torch.equal(y, drop_voxels(x, drop_ratio=0.3, block=4, generator=_gen(1)))
    assert torch.equal(x, torch.full_like(x, 5.0))  # input untouched
    fractions = [(y[i, 0] < 5).float().mean().item() for i in range(4)]
    assert all(0 < f <= 0.3 for f in fractions)
    assert torch.equal(y[:, 0] < 5, y[:, 1] < 5)  # both channels dropped at the same voxels
    assert torch.equal(drop_voxels(x, drop_ratio=0.0, block=4, generator=_gen(1)), x)


def test_swap_preserves_values():
    x = torch.arange(2 * 16 ** 3, dtype=torch.float32).reshape(1, 2, 16, 16, 16)
    y = swap_patches(x, swap_ratio=0.2, block=4, generator=_gen(2))
    assert not torch.equal(x, y)
    assert torch.equal(torch.sort(y.flatten()).values, torch.sort(x.flatten()).values)


def test_rotation_labels_invert():
    x = torch.rand(6, 2, 8, 8, 4)
    y, k = rotate_views(x, generator=_gen(3))
    assert set(k.tolist()) <= {0, 1, 2, 3}
    for i in range(6):
        assert torch.equal(torch.rot90(y[i], -int(k[i]), dims=(1, 2)), x[i])
    with pytest.raises(ConfigError, match="equal X and Y"):
        rotate_views(torch.rand(1, 1, 8, 4, 4), generator=_gen())


def test_nt_xent_hand_value():
    z = torch.eye(2, 4)
    # positives: cosine 1 → logit 1/0.5 = 2; the other two logits are 0 → loss = log(1 + 2 e^-2)
    assert nt_xent(z, z, temperature=0.5).item() == pytest.approx(math.log(1 + 2 * math.exp(-2)), rel=1e-6)
    with pytest.raises(ConfigError, match="temperature"):
        nt_xent(z, z, temperature=0)


@pytest.mark.parametrize("cfg,roi", [
    (ModelConfig(backbone="unet", channels=(4, 8, 16)), 16),
    (ModelConfig(backbone="dynunet", channels=(4, 8, 16)), 16),
    (ModelConfig(backbone="swinunetr", feature_size=12, depths=(1, 1, 1, 1)), 32),
])
def test_losses_and_gradients(cfg, roi):
    sc = SSLConfig(projection_dim=8, drop_block=4, loss_weight_contrastive=0.5)
    model = SSLModel(build_model(cfg, 2, seed=0), in_channels=2, projection_dim=8)
    x = torch.rand(2, 2, roi, roi, roi)
    ls = ssl_losses(model, x, sc, generator=_gen(4))
    assert ls.total.item() == pytest.approx(ls.rotation.item() + 0.5 * ls.contrastive.item() + ls.reconstruction.item(), rel=1e-5)
    assert 0 < ls.reconstruction.item() and 0 < ls.rotation.item()
    ls.total.backward()
    bb = model.backbone
    if cfg.backbone == "swinunetr":
        assert all(p.grad is not None for p in bb.swinViT.parameters() if p.requires_grad)
        assert all(p.grad is None for p in bb.encoder1.parameters())  # only swinViT is SSL-trained
    else:
        from sapkit.networks.factory import model_parts
        parts = model_parts(bb)
        assert all(p.grad is not None for m in parts["encoder"] for p in m.parameters())
        assert all(p.grad is None for m in parts["decoder"] + parts["head"] for p in m.parameters())


def test_load_ssl_model_returns_the_saved_weights_in_eval_mode(tmp_path):
    from sapkit.config import load_config
    from sapkit.errors import CheckpointError
    from sapkit.io.checkpoints import save_checkpoint
    from sapkit.training.ssl import build_ssl_model, load_ssl_model

    config = load_config("smoke")
    trained = build_ssl_model(config, seed=3)
    path = save_checkpoint(tmp_path / "model_final.pt", state_dict=trained.state_dict(), epoch=1)
    loaded = load_ssl_model(path, config)
    assert not loaded.training
    for (name, a), (_, b) in zip(trained.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    other = load_config("smoke", {"ssl.projection_dim": 16})  # another run's heads
    with pytest.raises(CheckpointError, match="does not fit the SSL model of this configuration"):
        load_ssl_model(path, other)
