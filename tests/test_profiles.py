"""The `paper` profile against docs/method.md §4, field by field; demo and smoke stay CPU-sized."""

import pytest

from sapkit.config import load_config
from sapkit.networks.factory import build_model, model_parts


@pytest.fixture(scope="module")
def paper():
    return load_config("paper")


def test_network_matches_spec(paper):
    m = paper.model
    assert m.backbone == "swinunetr" and m.in_channels == 2 and m.feature_size == 48
    assert m.depths == (2, 2, 2, 2) and m.num_heads == (3, 6, 12, 24)
    assert (m.drop_rate, m.attn_drop_rate, m.dropout_path_rate) == (0.1, 0.1, 0.1)
    assert m.norm_name == "instance"
    for section in (paper.skeleton, paper.ssl, paper.lesion):
        assert section.roi == (96, 96, 96) and section.batch_size == 2 and section.amp is True
    assert paper.skeleton.num_classes == 10


def test_optimisation_matches_spec(paper):
    lesion, skeleton = paper.lesion, paper.skeleton
    assert (lesion.epochs, lesion.warmup_epochs) == (400, 10) and (skeleton.epochs, skeleton.warmup_epochs) == (400, 10)
    assert lesion.weight_decay == skeleton.weight_decay == 1e-5
    assert lesion.lr_scratch == 1e-5 and skeleton.lr == 1e-5
    assert (lesion.lr_encoder_sap, lesion.lr_decoder_sap) == (2e-6, 1e-5)
    assert (lesion.lr_encoder_ssl, lesion.lr_decoder_ssl) == (5e-6, 1e-5)
    assert paper.seed == 42 and lesion.val_every == 5 and lesion.checkpoint == "final"


def test_sampling_augmentation_and_protocol_match_spec(paper):
    assert paper.lesion.sampler == "instance_balanced" and paper.lesion.negative_ratio == 1.0
    assert paper.lesion.margin_voxels == 10 and paper.lesion.inits == ("scratch", "ssl", "sap")
    a = paper.augment
    assert (a.flip_prob, a.rot90_prob) == (0.5, 0.2)
    assert (a.scale_intensity, a.scale_prob, a.shift_intensity, a.shift_prob) == (0.1, 0.1, 0.1, 0.1)
    assert paper.preprocess.clip_percentiles == (1.0, 99.0)
    assert (paper.splits.k, paper.splits.tuning_fold, paper.splits.seed) == (7, 6, 42)
    assert paper.lesion.folds == ("all",)
    i = paper.infer
    assert i.roi == (96, 96, 96) and i.overlap == 0.5 and i.blend == "constant" and i.sw_batch_size == 4
    assert paper.ssl.temperature == 0.5 and paper.ssl.drop_ratio == 0.3


def test_evaluation_defaults_match_spec(paper):
    e = paper.eval
    assert e.tolerance_mm == 2.0 and e.connectivity == 26 and e.hit == "any" and e.nsd_mode == "surface"
    assert e.large_lesion_ml == 1.0 and (e.froc_max_fp, e.froc_max_fp_large) == (15.0, 4.0)
    assert e.thresholds == tuple(round(0.05 * i, 2) for i in range(1, 20))
    assert e.tune_statistic == "median" and (e.n_bootstrap, e.seed) == (1000, 42)


def test_paper_network_builds_with_the_spec_parts(paper):
    model = build_model(paper.model, 2, seed=0)
    parts = model_parts(model)
    names = {name for name, module in model.named_children()}
    assert {"swinViT", "encoder1", "encoder2", "encoder3", "encoder4", "encoder10", "out"} <= names
    encoder_ids = {id(m) for m in parts["encoder"]}
    assert id(model.swinViT) in encoder_ids and id(model.encoder10) in encoder_ids
    assert [id(m) for m in parts["head"]] == [id(model.out)]
    assert sum(p.numel() for p in model.parameters()) > 60_000_000  # SwinUNETR fs48 has ~62 M parameters


@pytest.mark.parametrize("profile", ["smoke", "demo"])
def test_cpu_profiles_use_the_cnn_and_fewer_folds(profile):
    c = load_config(profile)
    assert c.model.backbone == "unet" and c.splits.k == 3 and c.splits.tuning_fold == 2


def test_demo_pools_enough_test_patients_and_pretrains_at_the_lesion_roi():
    """Issue 8's sizing: ≥ 16 pooled test patients; the skeleton model sees patches of the lesion ROI
    (a 48³ skeleton model at 32³ lesion patches transferred badly); ≥ 24 healthy scans."""
    c = load_config("demo")
    test_folds = c.splits.k - 1  # one fold tunes the threshold
    assert c.synth.n_patients * test_folds // c.splits.k >= 16
    assert c.synth.n_healthy_subjects * c.synth.scans_per_subject >= 24
    assert c.skeleton.roi == c.lesion.roi == c.infer.roi
