"""The catalogue of malformed inputs as a whole: one file per command (``test_bad_<command>.py``)
plus the training/transfer/inference catalogue (``test_bad_inputs_training.py``)."""

from __future__ import annotations

import importlib

COMMAND_FILES = ["check", "headers", "fingerprint", "profile", "prepare", "split", "evaluate", "train", "predict", "sweep",
                 "reproduce"]


def _modules():
    return [importlib.import_module(f"test_bad_{name}") for name in COMMAND_FILES]


def test_catalogue_is_large_enough():
    assert sum(len(m.CASES) for m in _modules()) >= 30


def test_catalogue_covers_at_least_a_hundred_kinds_with_the_training_catalogue():
    import test_bad_inputs_training

    n = sum(len(m.CASES) + len(m.CLI_CASES) for m in _modules())
    assert n + len(test_bad_inputs_training.CASES) >= 120, n


def test_every_command_file_is_counted():
    from pathlib import Path

    here = {p.stem.removeprefix("test_bad_") for p in Path(__file__).parent.glob("test_bad_*.py")}
    assert here - {"inputs_training"} == set(COMMAND_FILES)
