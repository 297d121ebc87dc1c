"""Exceptions raised by sapkit for user mistakes, and the warnings it gives about suspicious inputs.

Every message says what is wrong, what was expected, what was found and how to fix it,
naming the file or parameter involved. Library code raises these instead of letting a
deep nibabel/torch traceback reach the user.
"""

from __future__ import annotations

__all__ = [
    "SapkitError",
    "ConfigError",
    "OutputPathError",
    "ManifestError",
    "NiftiError",
    "CheckpointError",
    "MetricInputError",
    "EvaluationError",
    "LabelError",
    "TrainingError",
    "AcquisitionError",
    "SapkitWarning",
    "GeometryWarning",
    "LesionLabelWarning",
    "ThresholdGridWarning",
]


class SapkitError(ValueError):
    """Base class of every error sapkit raises for bad input (a ``ValueError``)."""


class ConfigError(SapkitError):
    """A profile, override or parameter is unknown or out of range."""


class OutputPathError(ConfigError):
    """An output path would replace one of the command's inputs or leave its output folder (``sapkit.io.output_paths``)."""


class ManifestError(SapkitError):
    """A data manifest (YAML/CSV) or a file it names is invalid."""


class NiftiError(SapkitError):
    """A NIfTI file cannot be read, has the wrong shape/grid, or holds invalid values."""


class CheckpointError(SapkitError):
    """A checkpoint cannot be loaded safely or does not fit the model."""


class MetricInputError(SapkitError):
    """Masks, probability maps or metric parameters are invalid (shape, spacing, range)."""


class LabelError(SapkitError):
    """A label map or label table is invalid (shape, grid, label values, missing bones)."""


class EvaluationError(SapkitError):
    """A cohort evaluation cannot run: predictions or tables missing, or a statistic's input is invalid."""


class TrainingError(SapkitError):
    """Training cannot go on: a loss, gradient or weight became non-finite (NaN/inf)."""


class AcquisitionError(SapkitError):
    """A scan's stations are incomplete or inconsistent (``sapkit.preprocessing.acquisition``);
    ``status`` names the defect (``incomplete``, ``inconsistent``) and the message each station and range."""

    def __init__(self, message: str, status: str = "incomplete") -> None:
        super().__init__(message)
        self.status = status


class SapkitWarning(UserWarning):
    """Base of the kit's warnings: a result stands, but the input deserves a look (one line on the command line)."""


class GeometryWarning(SapkitWarning):
    """A NIfTI header's geometry is ambiguous (no orientation stored, qform and sform disagree)."""


class LesionLabelWarning(SapkitWarning):
    """A GT mask holds touching lesions with different labels, which count as one lesion (connected components)."""


class ThresholdGridWarning(SapkitWarning):
    """The tuned threshold lies at the edge of its grid: the best value may lie beyond (docs/metrics.md §11)."""
