"""Malformed inputs for Profiles and ``-p key=value`` overrides (every command loads its configuration through
these): unknown keys and profiles, out-of-range values, malformed or hostile YAML.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations


import numpy as np

from bad_input_catalogue import catalogue_tests, YAML_BOMB, registry

CASES, CLI_CASES, case, cli_case = registry()


@case
def unknown_profile_key(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"lesion.lr": 1})), r"unknown config key 'lesion\.lr'; valid keys here"


@case
def unknown_profile(root):
    from sapkit.config import load_config

    return (lambda: load_config("tiny")), r"unknown profile 'tiny'; use one of smoke, demo, paper"


@case
def wrong_type_override(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"infer.overlap": "half"})), r"'infer\.overlap' must be a number"


@case
def unknown_connectivity_in_config(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"eval.connectivity": 4})), r"'eval\.connectivity' must be one of \(6, 18, 26\)"


@case
def bad_percentiles(root):
    from sapkit.data.intensity import scale_intensity

    return (lambda: scale_intensity(np.zeros((2, 4, 4, 4)), percentiles=(99, 1))), r"percentiles must satisfy 0 <= low < high <= 100"


@case
def training_roi_not_divisible(root):
    from sapkit.config import load_config

    # refused when the configuration is loaded, not when training builds the network
    return (lambda: load_config("smoke", {"lesion.roi": [20, 20, 20]})), \
        r"lesion\.roi \[20, 20, 20\] must be .*8.* for the unet backbone.*use e\.g\. \[16, 16, 16\]"


@case
def profile_yaml_is_a_list(root):
    from sapkit.config import load_config

    (root / "profile.yaml").write_text("- lesion\n- epochs\n")
    return (lambda: load_config(root / "profile.yaml")), r"profile .*profile\.yaml must be a YAML mapping of sections"


@case
def profile_yaml_syntax_error(root):
    from sapkit.config import load_config

    (root / "profile.yaml").write_text("lesion: {epochs: 2\n")
    return (lambda: load_config(root / "profile.yaml")), r"profile .*profile\.yaml is not valid YAML .*fix its syntax"


@case
def profile_yaml_bomb(root):
    from sapkit.config import load_config

    (root / "profile.yaml").write_text(YAML_BOMB)
    return (lambda: load_config(root / "profile.yaml")), r"profile .*profile\.yaml expands to more than 100,000 values"


@case
def profile_nan_learning_rate(root):
    from sapkit.config import load_config

    (root / "profile.yaml").write_text("lesion:\n  lr_scratch: .nan\n")
    return (lambda: load_config(root / "profile.yaml")), r"'lesion\.lr_scratch' must be a finite number, got nan"


@case
def zero_learning_rate(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"skeleton.lr": 0})), r"'skeleton\.lr' must be in \(0\.0, ∞\), got 0\.0"


@case
def negative_learning_rate(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"ssl.lr": -1e-4})), r"'ssl\.lr' must be in \(0\.0, ∞\)"


@case
def overlap_of_one(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"infer.overlap": 1})), r"'infer\.overlap' must be in \[0\.0, 1\.0\), got 1\.0"


@case
def negative_overlap(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"infer.overlap": -0.25})), r"'infer\.overlap' must be in \[0\.0, 1\.0\)"


@case
def negative_seed(root):
    from sapkit.config import load_config

    return (lambda: load_config("smoke", {"eval.seed": -7})), r"'eval\.seed' must be in \[0, ∞\), got -7"


@case
def override_python_tag(root):
    from sapkit.config import parse_overrides

    return (lambda: parse_overrides(["seed=!!python/object/apply:os.getcwd []"])), \
        r"override 'seed=!!python.*' uses a YAML tag sapkit does not load"


@case
def override_bad_yaml(root):
    from sapkit.config import parse_overrides

    return (lambda: parse_overrides(["lesion.inits=[sap"])), r"override 'lesion\.inits=\[sap' is not valid YAML"


test_bad_input_raises_clear_error_and_leaves_inputs_untouched, _ = catalogue_tests(CASES, CLI_CASES)
