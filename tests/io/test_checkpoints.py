"""sapkit.io.checkpoints: atomic save, weights_only load, foreign layouts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import write_evil_checkpoint
import torch

from sapkit.io.checkpoints import import_weights, load_checkpoint, remap_state_dict, save_checkpoint
from sapkit.errors import CheckpointError


def test_round_trip(tmp_path):
    sd = {"a.weight": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1], dtype=torch.int64)}
    p = save_checkpoint(tmp_path / "x" / "m.pt", state_dict=sd, epoch=3, rng={"torch": torch.get_rng_state()},
                        config={"seed": 42}, extra={"best_score": 0.5})
    ck = load_checkpoint(p)
    assert ck["epoch"] == 3 and ck["config"] == {"seed": 42} and ck["extra"]["best_score"] == 0.5
    assert torch.equal(ck["state_dict"]["a.weight"], sd["a.weight"])
    assert torch.equal(ck["rng"]["torch"], torch.get_rng_state())
    assert set(ck["versions"]) == {"sapkit", "torch", "monai"}
    assert [f.name for f in (tmp_path / "x").iterdir()] == ["m.pt"]  # no temp file left


def test_pickled_callable_is_refused(tmp_path):
    p = write_evil_checkpoint(tmp_path / "evil.pt", {"w": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"refused to load checkpoint .*evil\.pt"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="evil.pt"):
        import_weights(p)
    assert not (tmp_path / "PWNED").exists()


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")


@pytest.mark.parametrize("layout", ["bare", "authors", "module", "backbone"])
def test_import_layouts(tmp_path, layout):
    sd = {"enc.weight": torch.ones(2), "out.bias": torch.zeros(1)}
    obj = {
        "bare": sd,
        "authors": {"state_dict": sd, "epoch": 399},
        "module": {"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 7},
        "backbone": {f"backbone.{k}": v for k, v in sd.items()},
    }[layout]
    torch.save(obj, tmp_path / "w.pt")
    w = import_weights(tmp_path / "w.pt")
    assert set(w.state_dict) == set(sd)
    expected_remaps = {"bare": (), "authors": (), "module": ("strip 'module.'",), "backbone": ("strip 'backbone.'",)}
    assert w.remaps == expected_remaps[layout]
    assert w.epoch == {"bare": None, "authors": 399, "module": 7, "backbone": None}[layout]
    assert w.layout == ("bare" if layout in ("bare", "backbone") else "state_dict-wrapper")


def test_tang_swin_names():
    sd = {"module.swin_vit.patch_embed.proj.weight": torch.ones(1), "module.rotation_head.weight": torch.ones(1)}
    w = import_weights({"state_dict": sd})
    assert set(w.state_dict) == {"swinViT.patch_embed.proj.weight", "rotation_head.weight"}
    assert w.remaps == ("strip 'module.'", "'swin_vit.' -> 'swinViT.'")
    assert w.source_keys["swinViT.patch_embed.proj.weight"] == "module.swin_vit.patch_embed.proj.weight"
    # released Tang files store bare SwinTransformer keys: prefixed only when the target has swinViT
    bare = {"module.patch_embed.proj.weight": torch.ones(1), "module.layers1.0.blocks.0.norm1.weight": torch.ones(1)}
    out, _, remaps = remap_state_dict(bare, target_keys={"swinViT.patch_embed.proj.weight", "out.conv.weight"})
    assert set(out) == {"swinViT.patch_embed.proj.weight", "swinViT.layers1.0.blocks.0.norm1.weight"}
    assert remaps[-1] == "bare Swin keys -> 'swinViT.'"


def test_ambiguous_remap_and_empty():
    with pytest.raises(CheckpointError, match="ambiguous"):
        remap_state_dict({"module.a": torch.ones(1), "a": torch.ones(1)})
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        import_weights({"epoch": 3, "optimizer": {}})
