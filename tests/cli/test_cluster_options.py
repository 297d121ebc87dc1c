"""One parser for the cluster options of sweep, preprocess and train --print-slurm, one set of defaults."""

from __future__ import annotations

import argparse
import importlib

import pytest

from sapkit.cli._cluster import resources_from_args
from sapkit.config import load_config
from sapkit.jobs.executors import Resources
from sapkit.training.launch import slurm_script, training_plan

SHARED = ("--partition", "--account", "--qos", "--mem-gb", "--time-min", "--setup")


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"sapkit {command}")
    importlib.import_module(f"sapkit.cli.{command}").add_arguments(parser)
    return parser


def _help_of(parser: argparse.ArgumentParser, option: str) -> str:
    return next(a.help for a in parser._actions if option in a.option_strings)


@pytest.mark.parametrize("command,argv", [("sweep", ["grid.yaml"]), ("preprocess", ["raw/"]),
                                          ("train", ["lesion", "--print-slurm"])])
def test_every_command_has_the_shared_options_with_the_same_defaults(command, argv):
    parser = _parser(command)
    for option in SHARED:
        assert any(option in a.option_strings for a in parser._actions), f"sapkit {command} lacks {option}"
    assert f"(default {Resources().mem_gb:g})" in _help_of(parser, "--mem-gb")
    assert f"(default {Resources().time_min})" in _help_of(parser, "--time-min")
    args = parser.parse_args(argv)
    if command == "train":  # one job: the defaults are filled in
        assert (args.mem_gb, args.time_min) == (Resources().mem_gb, Resources().time_min)
    else:  # an array: unset options leave the grid file's resources (or the defaults) alone
        assert resources_from_args(args) == Resources()
        assert resources_from_args(args, Resources(time_min=30)).time_min == 30


def test_options_win_over_a_grid_files_resources():
    args = _parser("sweep").parse_args(["g.yaml", "--mem-gb", "16", "--setup", "module load cuda", "--qos", "high"])
    got = resources_from_args(args, Resources.from_mapping({"mem_gb": 32, "gpus": 1}))
    assert (got.mem_gb, got.gpus, got.setup, got.qos) == (16.0, 1, ("module load cuda",), "high")


def test_the_training_script_asks_for_qos_and_runs_the_setup_lines(tmp_path):
    plan = training_plan(tmp_path / "missing", load_config("smoke"), "ssl", world_size=1, count_samples=False)
    text = slurm_script(["ssl"], plan=plan, nodes=1, procs_per_node=1, gpus_per_node=0, cpus_per_node=2,
                        mem_gb=Resources().mem_gb, time_min=Resources().time_min, log_dir=tmp_path, qos="high",
                        setup=["module load cuda"])
    for flag in ("--qos=high", f"--mem={Resources().mem_gb:g}G", f"--time={Resources().time_min}"):
        assert f"#SBATCH {flag}\n" in text
    assert "module load cuda\n" in text
