import dataclasses
import typing

import pytest
import yaml

from sapkit.config import PROFILES, Config, config_to_dict, load_config, parse_overrides, save_config
from sapkit.errors import ConfigError


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_loads(profile):
    cfg = load_config(profile)
    assert isinstance(cfg, Config)
    assert cfg.profile == profile
    assert cfg.model.in_channels == 2
    assert 0 <= cfg.splits.tuning_fold < cfg.splits.k


def test_nested_and_dotted_overrides_apply():
    cfg = load_config("smoke", {"lesion": {"epochs": 7}, "eval.tolerance_mm": 1.5, "infer.roi": [16, 16, 16]})
    assert cfg.lesion.epochs == 7
    assert cfg.eval.tolerance_mm == 1.5
    assert cfg.infer.roi == (16, 16, 16)
    # the profile's other values are untouched
    assert cfg.lesion.batch_size == load_config("smoke").lesion.batch_size


def test_cli_overrides_are_yaml_values():
    assert parse_overrides(["lesion.inits=[sap, scratch]", "eval.hit=iou:0.5", "skeleton.amp=false"]) == {
        "lesion.inits": ["sap", "scratch"], "eval.hit": "iou:0.5", "skeleton.amp": False}
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_overrides(["lesion.epochs"])
    # YAML 1.1 reads "1e-3" (no dot) as a string; a float field still takes it
    config = load_config("smoke", parse_overrides(["lesion.lr_encoder_sap=1e-3", "lesion.lr_scratch=2E-4"]))
    assert config.lesion.lr_encoder_sap == 1e-3 and config.lesion.lr_scratch == 2e-4


@pytest.mark.parametrize("overrides, message", [
    ({"lesion.epochz": 2}, "unknown config key 'lesion.epochz'"),
    ({"nosuch": {"a": 1}}, "unknown config"),
    ({"lesion.epochs": "many"}, "'lesion.epochs' must be an integer"),
    ({"model.backbone": "resnet"}, "must be one of"),
    ({"eval.connectivity": 8}, "must be one of"),
    ({"infer.roi": [32, 32]}, "needs 3 values"),
    ({"skeleton.amp": "yes"}, "true or false"),
    ({"eval.tolerance_mm": -1}, r"'eval.tolerance_mm' must be in \[0.0, ∞\)"),
    ({"lesion.inits": ["sap", "imagenet"]}, r"has \['imagenet'\]; each entry must be one of"),
    ({"infer.overlap": 1.0}, r"'infer.overlap' must be in \[0.0, 1.0\), got 1.0"),
    ({"infer.overlap": -0.1}, r"'infer.overlap' must be in \[0.0, 1.0\)"),
    ({"lesion.lr_scratch": 0}, r"'lesion.lr_scratch' must be in \(0.0, ∞\), got 0.0"),
    ({"skeleton.lr": -1e-4}, r"'skeleton.lr' must be in \(0.0, ∞\)"),
    ({"ssl.lr": float("nan")}, r"'ssl.lr' must be a finite number, got nan"),
    ({"lesion.lr_encoder_sap": float("inf")}, r"'lesion.lr_encoder_sap' must be a finite number, got inf"),
    ({"seed": -1}, r"'seed' must be in \[0, ∞\), got -1"),
    ({"splits.seed": -3}, r"'splits.seed' must be in \[0, ∞\)"),
    ({"lesion.label_fraction": 0}, r"'lesion.label_fraction' must be in"),
    ({"augment.flip_prob": 1.5}, r"'augment.flip_prob' must be in \[0.0, 1.0\]"),
    ({"device": "gpu"}, r"'device' must be one of \('auto', 'cpu', 'cuda'\), got 'gpu'"),
    ({"lesion.sampler": "random"}, r"'lesion.sampler' must be one of \('instance_balanced', 'posneg'\)"),
    ({"eval.hit": "iou:0"}, r"'eval.hit' must be 'any' or 'iou:T' with 0 < T ≤ 1"),
    ({"eval.hit": "overlap"}, r"'eval.hit' must be 'any' or 'iou:T'"),
    ({"lesion.connectivity": True}, r"'lesion.connectivity' must be an integer"),
])
def test_bad_overrides_raise_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("smoke", overrides)


def test_unknown_profile_names_the_choices():
    with pytest.raises(ConfigError, match="smoke, demo, paper"):
        load_config("fast")


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config("demo", {"lesion.epochs": 3})
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(path)
    assert again == cfg
    assert yaml.safe_load(path.read_text())["lesion"]["epochs"] == 3
    assert config_to_dict(again)["infer"]["roi"] == list(cfg.infer.roi)


@pytest.mark.parametrize("hit", ["any", "iou:0.5", "iou:.25", "iou:1", "iou:1.0"])
def test_valid_hit_rules_load(hit):
    assert load_config("smoke", {"eval.hit": hit}).eval.hit == hit


def _literal_fields():
    """(dotted key, choices, is a list) of every config field typed Literal[...], found from the annotations."""
    out = []
    for section, section_hint in typing.get_type_hints(Config).items():
        hints = typing.get_type_hints(section_hint) if dataclasses.is_dataclass(section_hint) else {"": section_hint}
        for name, hint in hints.items():
            element = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
            if typing.get_origin(element) is typing.Literal:
                out.append((f"{section}.{name}" if name else section, typing.get_args(element),
                            typing.get_origin(hint) is tuple))
    return out


def test_every_literal_field_accepts_its_choices_and_rejects_others():
    fields = _literal_fields()
    assert {k for k, _, _ in fields} >= {"device", "model.backbone", "model.norm_name", "infer.blend", "infer.prob_dtype",
                                         "eval.connectivity", "eval.nsd_mode", "eval.tune_statistic", "lesion.sampler",
                                         "lesion.checkpoint", "lesion.connectivity", "lesion.inits"}
    fitting = {f"{s}.roi": [64, 64, 64] for s in ("skeleton", "ssl", "lesion", "infer")}  # every backbone takes 64
    for key, choices, many in fields:
        for choice in choices:
            value = [choice] if many else choice
            section, _, name = key.rpartition(".")
            config = load_config("smoke", {**fitting, key: value})
            got = getattr(getattr(config, section) if section else config, name)
            assert got == (tuple(value) if many else value)
        bad = "nonsense" if isinstance(choices[0], str) else 7
        with pytest.raises(ConfigError, match=f"'{key}'"):
            load_config("smoke", {key: [bad] if many else bad})


@pytest.mark.parametrize("key", ["skeleton.roi", "ssl.roi", "lesion.roi", "infer.roi"])
def test_a_roi_the_network_cannot_take_is_refused_at_load_time(key):
    with pytest.raises(ConfigError, match=rf"{key} \[32, 32, 32\] must be multiples of 32 of at least 64 .*swinunetr"):
        load_config("paper", {key: [32, 32, 32]})
    with pytest.raises(ConfigError, match=rf"{key} \[20, 16, 16\] must be multiples of 8 of at least 16 .*unet"):
        load_config("smoke", {"model.channels": [4, 8, 16, 32], key: [20, 16, 16]})
    assert load_config("smoke", {"model.channels": [4, 8, 16, 32], key: [24, 16, 32]})
