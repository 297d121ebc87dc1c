"""Malformed inputs for ``sapkit sweep``: grid files that are not YAML, not a mapping, name unknown keys or are
a YAML bomb.

See ``bad_input_catalogue`` for what every case must do.
"""

from __future__ import annotations


from bad_input_catalogue import catalogue_tests, YAML_BOMB, registry

CASES, CLI_CASES, case, cli_case = registry()


@case
def sweep_grid_not_yaml(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text("grid: {seed: [1, 2]\n")
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml is not valid YAML .*fix its syntax"


@case
def sweep_grid_value_not_a_list(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text("profile: smoke\ngrid:\n  seed: 3\n")
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml: 'grid' must map override keys to non-empty lists"


@case
def sweep_grid_unknown_key(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text("profile: smoke\ngrid:\n  lesion.lr: [0.1, 0.01]\n")
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml: unknown config key 'lesion\.lr'; valid keys here"


@case
def sweep_grid_is_a_list(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text("- seed\n- 1\n")
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml must be a YAML mapping with keys profile"


@case
def sweep_grid_bomb(root):
    from sapkit.pipeline.sweep import load_grid

    (root / "grid.yaml").write_text(YAML_BOMB)
    return (lambda: load_grid(root / "grid.yaml")), r"grid file .*grid\.yaml expands to more than 100,000 values"


test_bad_input_raises_clear_error_and_leaves_inputs_untouched, _ = catalogue_tests(CASES, CLI_CASES)
