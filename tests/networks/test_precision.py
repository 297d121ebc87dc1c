"""Mixed precision (issue 23: fp16 only): bfloat16 where the GPU supports it, float16 with a gradient scaler
elsewhere; the CPU never autocasts, so no CPU number depends on the settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from sapkit.config import load_config
from sapkit.errors import ConfigError
from sapkit.networks.precision import autocast_dtype

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from test_tasks import TRAIN  # noqa: E402


@pytest.mark.parametrize("supported, choice, expected", [
    (True, "auto", torch.bfloat16), (False, "auto", torch.float16), (True, "float16", torch.float16),
    (True, "bfloat16", torch.bfloat16), (False, "float16", torch.float16),
])
def test_auto_is_bfloat16_where_the_gpu_supports_it(monkeypatch, supported, choice, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert autocast_dtype(True, choice, "cuda") == expected
    assert autocast_dtype(False, choice, "cuda") is None  # amp off
    assert autocast_dtype(True, choice, "cpu") is None  # the CPU never autocasts


def test_bfloat16_on_a_gpu_without_it_and_unknown_values_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ConfigError, match=r"amp_dtype bfloat16 needs a GPU that supports it"):
        autocast_dtype(True, "bfloat16", "cuda:0")
    with pytest.raises(ConfigError, match=r"amp_dtype must be one of \('auto', 'bfloat16', 'float16'\)"):
        autocast_dtype(True, "fp8", "cpu")
    with pytest.raises(ConfigError, match=r"lesion\.amp_dtype"):
        load_config("smoke", {"lesion.amp_dtype": "fp16"})


def test_every_section_with_amp_has_amp_dtype_auto_by_default():
    for profile in ("smoke", "demo", "paper"):
        config = load_config(profile)
        for section in (config.skeleton, config.ssl, config.lesion, config.infer):
            assert section.amp_dtype == "auto"


def test_cpu_training_does_not_depend_on_the_precision_settings(tmp_path):
    from sapkit.training.skeleton_task import train_skeleton

    weights = []
    for k, overrides in enumerate(({"skeleton.amp": False, "infer.amp": False},
                                   {"skeleton.amp_dtype": "float16", "infer.amp_dtype": "float16"},
                                   {"skeleton.amp_dtype": "bfloat16", "infer.amp_dtype": "bfloat16"})):
        config = load_config("smoke", {"device": "cpu", "skeleton.epochs": 1, **overrides})
        result = train_skeleton(tmp_path / str(k), config, train_cases=TRAIN[:2], val_cases=None, progress=False)
        weights.append(torch.load(result.final_path, weights_only=True)["state_dict"])
    for other in weights[1:]:
        assert all(torch.equal(weights[0][key], other[key]) for key in weights[0])
