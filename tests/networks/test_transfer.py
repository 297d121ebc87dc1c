"""sapkit.networks.transfer: SAP/SSL weight transfer with a report, discriminative learning rates."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from sapkit.config import LesionConfig, ModelConfig, load_config
from sapkit.errors import CheckpointError, ConfigError
from sapkit.networks.factory import build_model, part_of_tensors, ssl_modules
from sapkit.training.ssl import SSLModel
from sapkit.networks.transfer import lesion_param_groups, save_transfer_report, transfer_weights

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
    assert list(back.columns) == ["tensor", "part", "shape", "source_shape", "source_name", "status", "source",
                                  "layout", "remaps"]
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
