"""sapkit.networks.factory: factory, named parts, bottleneck interface."""

from __future__ import annotations

import pytest
import torch

from sapkit.config import ModelConfig
from sapkit.errors import ConfigError
from sapkit.networks.factory import (
    backbone_of, bottleneck_channels, build_model, downsample_factor, encoder_features, model_parts,
    part_of_tensors, ssl_modules,
)

TINY = {
    "unet": ModelConfig(backbone="unet", channels=(4, 8, 16)),
    "dynunet": ModelConfig(backbone="dynunet", channels=(4, 8, 16)),
    "swinunetr": ModelConfig(backbone="swinunetr", feature_size=12),
}


@pytest.mark.parametrize("backbone", ["unet", "dynunet"])
def test_cnn_forward_shape_and_features(backbone):
    net = build_model(TINY[backbone], 3, seed=0)
    x = torch.rand(2, 2, 16, 16, 16)
    assert net(x).shape == (2, 3, 16, 16, 16)
    f = encoder_features(net, x)
    assert f.shape == (2, bottleneck_channels(net), 4, 4, 4)
    assert downsample_factor(net) == 4
    assert backbone_of(net) == backbone


def test_swinunetr_parts_and_bottleneck():
    net = build_model(TINY["swinunetr"], 10, seed=0)
    parts = model_parts(net)
    assert parts["encoder"] == [net.swinViT, net.encoder1, net.encoder2, net.encoder3, net.encoder4, net.encoder10]
    assert parts["head"] == [net.out]
    assert ssl_modules(net) == [net.swinViT]
    assert bottleneck_channels(net) == 16 * 12 and downsample_factor(net) == 32
    with torch.no_grad():
        f = encoder_features(net.eval(), torch.rand(1, 2, 32, 32, 32))
    assert f.shape == (1, 192, 1, 1, 1)


@pytest.mark.parametrize("backbone", ["unet", "dynunet", "swinunetr"])
def test_parts_partition_every_parameter(backbone):
    net = build_model(TINY[backbone], 10, seed=0)
    ids = [id(p) for mods in model_parts(net).values() for m in mods for p in m.parameters()]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    parts = part_of_tensors(net)
    assert set(parts) == set(net.state_dict())
    assert set(parts.values()) == {"encoder", "decoder", "head"}


@pytest.mark.parametrize("backbone", ["unet", "dynunet", "swinunetr"])
def test_only_head_depends_on_class_count(backbone):
    a, b = build_model(TINY[backbone], 10, seed=0).state_dict(), build_model(TINY[backbone], 2, seed=0).state_dict()
    assert set(a) == set(b)
    differ = {k for k in a if a[k].shape != b[k].shape}
    heads = {k for k, p in part_of_tensors(build_model(TINY[backbone], 2)).items() if p == "head"}
    assert differ and differ <= heads


def test_cnn_ssl_modules_are_the_encoder():
    net = build_model(TINY["unet"], 2)
    assert ssl_modules(net) == model_parts(net)["encoder"]
    assert len(model_parts(net)["encoder"]) == 3  # two down stages + bottom unit


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model(TINY["unet"], 2, seed=7).state_dict()
    b = build_model(TINY["unet"], 2, seed=7).state_dict()
    c = build_model(TINY["unet"], 2, seed=8).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_errors():
    with pytest.raises(ConfigError, match="model.backbone must be one of"):
        build_model(ModelConfig(backbone="vnet"), 2)
    with pytest.raises(ConfigError, match="at least 2 levels"):
        build_model(ModelConfig(backbone="unet", channels=(8,)), 2)
    with pytest.raises(ConfigError, match="not built by sapkit"):
        backbone_of(torch.nn.Linear(2, 2))


def test_cpu_layout_changes_speed_not_values():
    """channels_last_3d (the CPU layout of the engine and inference) gives the same logits."""
    from sapkit.networks.factory import memory_format_for

    net = build_model(ModelConfig(backbone="unet", channels=(4, 8, 16)), 2, seed=0).eval()
    x = torch.rand(2, 2, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x)
        fast = net.to(memory_format=memory_format_for("cpu"))(x.to(memory_format=memory_format_for("cpu")))
    assert memory_format_for("cuda") == torch.contiguous_format
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
