"""The catalogue of malformed inputs as a whole: one file per command (``test_bad_<command>.py``), the
training/transfer/inference catalogue (``test_bad_inputs_training.py``) and the output-safety cases
(``tests/cli/output_safety/``: every writing command pointed at each of its inputs, ids that leave the folder)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

COMMAND_FILES = ["check", "headers", "fingerprint", "profile", "prepare", "split", "evaluate", "train", "predict",
                 "export", "sweep", "reproduce"]
OUTPUT_SAFETY = Path(__file__).resolve().parents[1] / "output_safety"
SAFETY_FILES = ["test_safety_analysis", "test_safety_ids", "test_safety_runs"]


def _modules():
    return [importlib.import_module(f"test_bad_{name}") for name in COMMAND_FILES]


def _safety_modules():
    if str(OUTPUT_SAFETY) not in sys.path:
        sys.path.insert(0, str(OUTPUT_SAFETY))
    return [importlib.import_module(name) for name in SAFETY_FILES]


def catalogue_counts() -> dict[str, int]:
    """Kinds of bad input per part of the catalogue (every case is one kind)."""
    import test_bad_inputs_training

    counts = {f"test_bad_{m.__name__.removeprefix('test_bad_')}": len(m.CASES) + len(m.CLI_CASES) for m in _modules()}
    counts["test_bad_inputs_training"] = len(test_bad_inputs_training.CASES)
    counts.update({m.__name__: len(m.CASES) for m in _safety_modules()})
    return counts


def test_catalogue_is_large_enough():
    assert sum(len(m.CASES) for m in _modules()) >= 30


def test_catalogue_covers_at_least_two_hundred_kinds_with_the_training_and_output_safety_cases():
    counts = catalogue_counts()
    assert sum(counts.values()) >= 200, counts
    assert sum(n for name, n in counts.items() if name.startswith("test_safety")) >= 60, counts


def test_every_command_file_is_counted():
    here = {p.stem.removeprefix("test_bad_") for p in Path(__file__).parent.glob("test_bad_*.py")}
    assert here - {"inputs_training"} == set(COMMAND_FILES)
    assert {p.stem for p in OUTPUT_SAFETY.glob("test_safety_*.py")} == set(SAFETY_FILES)
