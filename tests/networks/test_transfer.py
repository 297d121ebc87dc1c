"""sapkit.networks.transfer: SAP/SSL weight transfer with a report, discriminative learning rates."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from sapkit.config import LesionConfig, ModelConfig, load_config
from sapkit.errors import CheckpointError, ConfigError
from sapkit.networks.factory import build_model, part_of_tensors, ssl_modules
from sapkit.training.ssl import SSLModel
from sapkit.networks.transfer import lesion_param_groups, save_transfer_report, transfer_weights, zero_head

TINY = {
    "unet": ModelConfig(backbone="unet", channels=(4, 8, 16)),
    "dynunet": ModelConfig(backbone="dynunet", channels=(4, 8, 16)),
    "swinunetr": ModelConfig(backbone="swinunetr", feature_size=12),
}


def _authors_file(path, state_dict):
    """The authors' layout: {"state_dict": ..., "epoch": ...} saved from a DDP model (module. prefix)."""
    torch.save({"state_dict": {f"module.{k}": v for k, v in state_dict.items()}, "epoch": 399}, path)
    return path


@pytest.mark.parametrize("backbone", ["unet", "dynunet", "swinunetr"])
def test_sap_loads_all_but_head(tmp_path, backbone):
    skeleton = build_model(TINY[backbone], 10, seed=1)
    src = _authors_file(tmp_path / "skeleton.pt", skeleton.state_dict())
    lesion = build_model(TINY[backbone], 2, seed=2)
    head_before = {k: v.clone() for k, v in lesion.state_dict().items() if part_of_tensors(lesion)[k] == "head"}
    report = transfer_weights(lesion, src, init="sap")
    rows = report[report["status"] != "not-in-target"]
    assert (rows.loc[rows["part"] != "head", "status"] == "loaded").all()
    assert (rows.loc[rows["part"] == "head", "status"] == "skipped-by-rule").all()
    assert len(rows) == len(lesion.state_dict()) and report.attrs["remaps"] == ["strip 'module.'"]
    sd, ssd = lesion.state_dict(), skeleton.state_dict()
    for k, part in part_of_tensors(lesion).items():
        if part == "head":  # the new 2-class head stays as created (not a no-op re-init, not copied)
            assert torch.equal(sd[k], head_before[k])
        else:
            assert torch.equal(sd[k], ssd[k])


@pytest.mark.parametrize("backbone", ["unet", "dynunet", "swinunetr"])
def test_ssl_loads_only_the_ssl_encoder(tmp_path, backbone):
    ssl = SSLModel(build_model(TINY[backbone], 2, seed=3), in_channels=2, projection_dim=16)
    if backbone == "swinunetr":  # Tang et al.'s naming: swin_vit.* + heads, from a DDP run
        sd = {f"module.swin_vit.{k[len('backbone.swinViT.'):]}": v for k, v in ssl.state_dict().items()
              if k.startswith("backbone.swinViT.")}
        sd.update({f"module.{k}": v for k, v in ssl.state_dict().items() if not k.startswith("backbone.")})
        torch.save({"state_dict": sd, "epoch": 100}, tmp_path / "ssl.pt")
    else:  # sapkit's own SSL layout: backbone.* + heads, from a DDP run
        torch.save({"state_dict": {f"module.{k}": v for k, v in ssl.state_dict().items()}}, tmp_path / "ssl.pt")
    lesion = build_model(TINY[backbone], 2, seed=4)
    report = transfer_weights(lesion, tmp_path / "ssl.pt", init="ssl")
    ids = {id(t) for m in ssl_modules(lesion) for t in list(m.parameters()) + list(m.buffers())}
    encoder_keys = {k for k, t in lesion.state_dict(keep_vars=True).items() if id(t) in ids}
    target = report[report["status"] != "not-in-target"].set_index("tensor")
    assert set(target.index[target["status"] == "loaded"]) == encoder_keys
    assert (target.drop(index=list(encoder_keys))["status"] == "skipped-by-rule").all()
    extra = report[report["status"] == "not-in-target"]["tensor"]
    assert any(t.startswith("rotation_head.") for t in extra)
    if backbone == "swinunetr":
        assert "'swin_vit.' -> 'swinViT.'" in report.attrs["remaps"]
        assert not (target.loc[[k for k in target.index if k.startswith("encoder1.")], "status"] == "loaded").any()
    src = ssl.backbone.state_dict()
    for k in encoder_keys:
        assert torch.equal(lesion.state_dict()[k], src[k])


def test_nothing_loaded_is_an_error(tmp_path):
    torch.save({"state_dict": {"foo.weight": torch.zeros(3)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="loaded no tensor"):
        transfer_weights(build_model(TINY["unet"], 2), tmp_path / "other.pt", init="sap")


def test_mismatch_in_transferred_part_is_an_error(tmp_path):
    bigger = build_model(ModelConfig(backbone="unet", channels=(4, 8, 32)), 10)
    torch.save(bigger.state_dict(), tmp_path / "bigger.pt")
    with pytest.raises(CheckpointError, match="shape-mismatch"):
        transfer_weights(build_model(TINY["unet"], 2), tmp_path / "bigger.pt", init="sap")
    partial = {k: v for k, v in build_model(TINY["unet"], 10).state_dict().items() if "model.0." not in k}
    with pytest.raises(CheckpointError, match="missing-in-source"):
        transfer_weights(build_model(TINY["unet"], 2), partial, init="sap")
    with pytest.raises(ConfigError, match="init 'sap' or 'ssl'"):
        transfer_weights(build_model(TINY["unet"], 2), partial, init="scratch")


def test_report_csv(tmp_path):
    lesion = build_model(TINY["unet"], 2)
    report = transfer_weights(lesion, build_model(TINY["unet"], 10).state_dict(), init="sap")
    path = save_transfer_report(report, tmp_path / "transfer.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == ["tensor", "part", "shape", "source_shape", "source_name", "status", "reason",
                                  "source", "layout", "remaps"]
    assert set(back.loc[back["status"] == "skipped-by-rule", "reason"]) == {"output head: re-created for the new classes"}
    assert set(back["remaps"]) == {"none"} and set(back["layout"]) == {"bare"}
    assert back["status"].value_counts().to_dict() == report["status"].value_counts().to_dict()


def test_discriminative_learning_rates_paper():
    lc = load_config("paper").lesion
    net = build_model(TINY["swinunetr"], 2)
    enc_ids = {id(p) for m in (net.swinViT, net.encoder1, net.encoder2, net.encoder3, net.encoder4, net.encoder10)
               for p in m.parameters()}
    for init, (enc, dec) in {"sap": (2e-6, 1e-5), "ssl": (5e-6, 1e-5), "scratch": (1e-5, 1e-5)}.items():
        groups = lesion_param_groups(net, init=init, lesion_config=lc)
        assert [g["name"] for g in groups] == ["encoder", "decoder"]
        assert (groups[0]["lr"], groups[1]["lr"]) == pytest.approx((enc, dec))
        assert {id(p) for p in groups[0]["params"]} == enc_ids
        assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(list(net.parameters()))
    with pytest.raises(ConfigError, match="init must be one of"):
        lesion_param_groups(net, init="imagenet", lesion_config=LesionConfig())


def _tang_released_layout(feature_size: int, extra: bool = True) -> dict:
    """A state dict in the layout of Tang et al.'s released SSL file (``model_swinvit.pt``).

    That file holds ``{"state_dict": ...}`` saved from a DDP-wrapped bare Swin transformer trained on
    1-channel CT: keys ``module.patch_embed.proj.weight``, ``module.layers1.0.blocks.0.mlp.fc1.weight``
    … (MONAI's ``SwinUNETR.load_from`` reads exactly these names), plus SSL heads the lesion model
    does not have. Built here from MONAI's own Swin transformer with 1 input channel.
    """
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(3)
    swin = SwinUNETR(in_channels=1, out_channels=2, feature_size=feature_size).swinViT
    state = {}
    for key, value in swin.state_dict().items():
        name = key.replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2.")
        state[f"module.{name}"] = value.clone()
    if extra:
        state["module.rotation_head.weight"] = torch.randn(4, 16 * feature_size)
        state["module.contrastive_head.weight"] = torch.randn(512, 16 * feature_size)
    return {"state_dict": state}


def test_tang_released_ssl_layout_loads_with_inflated_patch_embedding(tmp_path):
    file = tmp_path / "model_swinvit.pt"
    released = _tang_released_layout(12)
    torch.save(released, file)
    src = released["state_dict"]
    model = build_model(TINY["swinunetr"], 2, seed=0)
    report = transfer_weights(model, file, init="ssl")
    rows = report.set_index("tensor")
    swin_keys = [k for k in model.state_dict() if k.startswith("swinViT.")]
    assert rows.loc["swinViT.patch_embed.proj.weight", "status"] == "inflated"
    assert rows.loc["swinViT.patch_embed.proj.weight", "source_shape"] == (12, 1, 2, 2, 2)
    assert rows.loc["swinViT.patch_embed.proj.weight", "shape"] == (12, 2, 2, 2, 2)
    assert "divided by 2" in rows.loc["swinViT.patch_embed.proj.weight", "reason"]
    assert (rows.loc[[k for k in swin_keys if k != "swinViT.patch_embed.proj.weight"], "status"] == "loaded").all()
    # truthful source names: the key as the file stores it
    fc1 = "swinViT.layers2.0.blocks.1.mlp.linear1.weight"
    assert rows.loc[fc1, "source_name"] == "module.layers2.0.blocks.1.mlp.fc1.weight"
    assert rows.loc["swinViT.layers4.0.downsample.reduction.weight", "source_name"] == \
        "module.layers4.0.downsample.reduction.weight"
    extra = report.loc[report["status"] == "not-in-target", "source_name"].tolist()
    assert sorted(extra) == ["module.contrastive_head.weight", "module.rotation_head.weight"]
    others = rows.loc[[k for k in model.state_dict() if not k.startswith("swinViT.")]]
    assert (others["status"] == "skipped-by-rule").all() and others["reason"].str.len().gt(0).all()
    assert report.attrs["n_loaded"] == len(swin_keys)
    assert "'mlp.fc1/fc2' -> 'mlp.linear1/linear2'" in report.attrs["remaps"]
    # values: copied bit for bit, the 1-channel patch embedding spread over 2 channels and halved
    state = model.state_dict()
    assert torch.equal(state[fc1], src["module.layers2.0.blocks.1.mlp.fc1.weight"])
    w1 = src["module.patch_embed.proj.weight"]
    assert torch.equal(state["swinViT.patch_embed.proj.weight"], torch.cat([w1, w1], 1) / 2)
    # the documented rule: 2 identical channels give the 1-channel network's patch embedding
    x1 = torch.rand(1, 1, 64, 64, 64)
    from monai.networks.nets import SwinUNETR

    ref = SwinUNETR(in_channels=1, out_channels=2, feature_size=12).swinViT
    ref.load_state_dict({k[len("module."):].replace(".mlp.fc1.", ".mlp.linear1.").replace(".mlp.fc2.", ".mlp.linear2."): v
                         for k, v in src.items() if "_head" not in k})
    with torch.no_grad():
        a = model.swinViT.patch_embed(torch.cat([x1, x1], 1))
        b = ref.patch_embed(x1)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_tang_layout_of_other_sizes_is_refused_naming_the_tensor(tmp_path):
    file = tmp_path / "model_swinvit.pt"
    torch.save(_tang_released_layout(24), file)  # a feature_size-24 file into a feature_size-12 model
    with pytest.raises(CheckpointError, match=r"feature_size.*pretrained model's") as err:
        transfer_weights(build_model(TINY["swinunetr"], 2, seed=0), file, init="ssl")
    assert "module.patch_embed.proj.weight" in str(err.value) or "shape-mismatch" in str(err.value)


@pytest.mark.parametrize("backbone", ["unet", "dynunet", "swinunetr"])
def test_zero_head_sets_only_the_head_to_zero(backbone):
    """lesion.head_init=zero (docs/reproducibility.md §5): head parameters 0, everything else untouched, logits 0."""
    model = build_model(TINY[backbone], 2, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    parts = part_of_tensors(model)
    n = zero_head(model)
    head = [k for k, part in parts.items() if part == "head"]
    assert head and n == sum(before[k].numel() for k in head if before[k].is_floating_point())
    for k, v in model.state_dict().items():
        assert torch.count_nonzero(v) == 0 if k in head else torch.equal(v, before[k])
    x = torch.randn(1, 2, 64, 64, 64) if backbone == "swinunetr" else torch.randn(1, 2, 32, 32, 32)
    with torch.no_grad():
        assert torch.count_nonzero(model.eval()(x)) == 0
