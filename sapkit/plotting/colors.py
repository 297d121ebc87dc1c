"""One colour and naming convention for every figure and viewer of the kit.

- **Reference** labels (the ground truth a prediction is compared with) are outlined in green
  (:data:`REFERENCE_COLOR`), **predictions** in cyan (:data:`PREDICTION_COLOR`).
- Each **initialisation** has one colour (:data:`INIT_COLORS`: scratch grey, SSL blue, SAP red)
  and one display name (:data:`INIT_LABELS`), listed in :data:`INIT_ORDER`.
- Label maps are drawn in discrete colours, value ``k`` in :func:`label_color`; the 9 bone
  classes of the SAP skeleton map keep their colours everywhere (:data:`BONE_COLORS`) and are
  named in a discrete legend (:func:`label_legend`), never with a continuous colour bar. The
  label palette leaves out green and cyan, so labels never look like a reference or a prediction.
- **Lesion outcomes** of a thresholded prediction (:data:`OUTCOMES`): a predicted lesion that hits
  a reference lesion (true positive) in cyan, one that hits none (false positive) in orange, a
  reference lesion no prediction hit (missed) in magenta (:data:`OUTCOME_COLORS`, named by
  :data:`OUTCOME_LABELS`; label value ``k`` of an outcome map is ``OUTCOMES[k - 1]``).
- Table columns become readable axis titles through :func:`axis_title`.
"""

from __future__ import annotations

import zlib
from types import MappingProxyType
from typing import Iterable, Mapping

from sapkit.errors import ConfigError
from sapkit.label_maps import SKELETON_CLASSES

__all__ = [
    "REFERENCE_COLOR",
    "PREDICTION_COLOR",
    "OUTCOMES",
    "OUTCOME_COLORS",
    "OUTCOME_LABELS",
    "outcome_names",
    "outcome_value_colors",
    "INIT_ORDER",
    "INIT_COLORS",
    "INIT_LABELS",
    "LABEL_COLORS",
    "BONE_COLORS",
    "init_color",
    "init_label",
    "sorted_inits",
    "label_color",
    "label_legend",
    "axis_title",
]

#: Outline of a reference (ground-truth) mask: green.
REFERENCE_COLOR = "#2ca02c"
#: Outline of a predicted mask: cyan.
PREDICTION_COLOR = "#00e5ff"

#: Lesion outcomes of a thresholded prediction, in label-value order (value k ≥ 1 is ``OUTCOMES[k - 1]``).
OUTCOMES: tuple[str, ...] = ("true_positive", "false_positive", "missed")
#: One colour per outcome: a true positive is a prediction (cyan), a false positive orange, a missed
#: reference lesion magenta; told apart also with red–green colour blindness (light blue, olive, blue).
OUTCOME_COLORS: Mapping[str, str] = MappingProxyType(
    {"true_positive": PREDICTION_COLOR, "false_positive": "#ff8c00", "missed": "#ff00ff"})
#: Legend names of the outcomes.
OUTCOME_LABELS: Mapping[str, str] = MappingProxyType(
    {"true_positive": "true positive", "false_positive": "false positive", "missed": "missed lesion"})

#: Initialisations in the order every figure and table lists them.
INIT_ORDER: tuple[str, ...] = ("scratch", "ssl", "sap")
#: One colour per initialisation (grey, blue, red: SAP stands out).
INIT_COLORS: Mapping[str, str] = MappingProxyType({"scratch": "#7f7f7f", "ssl": "#1f77b4", "sap": "#d62728"})
#: Display names of the initialisations.
INIT_LABELS: Mapping[str, str] = MappingProxyType({"scratch": "Scratch", "ssl": "SSL", "sap": "SAP"})
_EXTRA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#ff7f0e", "#393b79", "#637939")

#: Discrete label colours: value ``k`` ≥ 1 gets ``LABEL_COLORS[(k - 1) % len(LABEL_COLORS)]`` (no green, no cyan).
LABEL_COLORS: tuple[str, ...] = (
    "#e6194b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#f032e6", "#9a6324", "#fabebe",
    "#800000", "#808000", "#000075", "#e6beff", "#ffd8b1", "#a9a9a9",
)

_AXIS_TITLES: Mapping[str, str] = MappingProxyType({
    "epoch": "epoch", "loss": "total loss", "seconds": "seconds per epoch", "score": "validation score",
    "dice": "Dice", "dice_mean": "mean lesion Dice per patient (missed lesions = 0)", "global_dice": "global Dice",
    "f2": "patient F2", "sensitivity": "lesion sensitivity", "precision": "precision",
    "fp": "false positives per exam", "fp_per_exam": "false positives per exam", "nsd": "NSD",
    "threshold": "probability threshold", "volume_ml": "volume (mL)", "n_voxels": "voxels", "max_prob": "maximum probability",
    "median_f2": "median patient F2", "median_dice": "median per-patient Dice", "bone": "bone", "stage": "stage",
    "init": "initialisation", "detection_rate": "detection rate",
})


def _init_of(key: str) -> str:
    """``"sap/fold_0"`` → ``"sap"``."""
    return str(key).split("/")[0].lower()


def init_color(init: str) -> str:
    """Colour of an initialisation (``"sap"``, ``"sap/fold_0"`` …).

    Unknown names get a stable colour from a fixed spare palette (same name, same colour).

    Examples
    --------
    >>> init_color("SAP/fold_3") == INIT_COLORS["sap"]
    True
    """
    name = _init_of(init)
    if name in INIT_COLORS:
        return INIT_COLORS[name]
    return _EXTRA_COLORS[zlib.crc32(name.encode()) % len(_EXTRA_COLORS)]


def init_label(key: str) -> str:
    """Display name of an initialisation, keeping any ``/fold_k`` suffix.

    Examples
    --------
    >>> init_label("sap/fold_0"), init_label("mae")
    ('SAP/fold_0', 'mae')
    """
    name = _init_of(key)
    rest = str(key)[len(name):]
    return INIT_LABELS.get(name, str(key).split("/")[0]) + rest


def sorted_inits(keys: Iterable) -> list:
    """Keys in :data:`INIT_ORDER` (by the part before ``/``), unknown names last, alphabetically.

    Examples
    --------
    >>> sorted_inits(["sap", "mae", "scratch/fold_1", "ssl"])
    ['scratch/fold_1', 'ssl', 'sap', 'mae']
    """
    order = {name: i for i, name in enumerate(INIT_ORDER)}
    return sorted(keys, key=lambda k: (order.get(_init_of(k), len(order)), str(k)))


def label_color(value: int) -> str:
    """Colour of label value ``value`` (≥ 1; 0 is background and is never drawn).

    Raises
    ------
    ConfigError
        ``value`` is below 1.

    Examples
    --------
    >>> label_color(1) == LABEL_COLORS[0] and label_color(1 + len(LABEL_COLORS)) == LABEL_COLORS[0]
    True
    """
    k = int(value)
    if k < 1:
        raise ConfigError(f"label value {value!r} has no colour: 0 is background; pass values ≥ 1.")
    return LABEL_COLORS[(k - 1) % len(LABEL_COLORS)]


#: Colour of each bone class of the SAP skeleton map (``SKELETON_CLASSES``, background excluded).
BONE_COLORS: Mapping[int, str] = MappingProxyType({k: label_color(k) for k in SKELETON_CLASSES if k != 0})


def outcome_names() -> dict[int, str]:
    """Label value → legend name of an outcome map (:data:`OUTCOMES`).

    Examples
    --------
    >>> outcome_names()
    {1: 'true positive', 2: 'false positive', 3: 'missed lesion'}
    """
    return {k: OUTCOME_LABELS[o] for k, o in enumerate(OUTCOMES, start=1)}


def outcome_value_colors() -> dict[int, str]:
    """Label value → colour of an outcome map (:data:`OUTCOME_COLORS`)."""
    return {k: OUTCOME_COLORS[o] for k, o in enumerate(OUTCOMES, start=1)}


def label_legend(values: Iterable[int], names: Mapping[int, str] | None = None,
                 colors: Mapping[int, str] | None = None) -> list[tuple[int, str, str]]:
    """Legend entries ``(value, name, colour)`` of a label map, in label order, background left out.

    Parameters
    ----------
    values : iterable of int
        Label values present (duplicates and 0 are ignored).
    names : mapping int → str, optional
        E.g. ``sapkit.label_maps.SKELETON_CLASSES``; a value without a name is called ``label <k>``.
    colors : mapping int → colour, optional
        Colours of the values (e.g. :func:`outcome_value_colors`); default :func:`label_color`.

    Examples
    --------
    >>> label_legend([0, 3, 1, 3], SKELETON_CLASSES)[0][:2], label_legend([2])[0][1]
    ((1, 'cervical spine'), 'label 2')
    """
    names = names or {}
    unique = sorted({int(v) for v in values} - {0})
    colors = colors or {}
    return [(k, str(names.get(k, f"label {k}")), colors.get(k) or label_color(k)) for k in unique]


def axis_title(column: str) -> str:
    """A readable axis title for a table column (``"dice_mean"`` → a sentence, not the raw name).

    Known columns have fixed titles; ``val_*`` columns read "validation …", ``lr_*`` "learning
    rate (…)", ``loss_*`` "… loss"; anything else has its underscores replaced by spaces.

    Examples
    --------
    >>> axis_title("fp_per_exam"), axis_title("val_dice_mean"), axis_title("loss_rotation")
    ('false positives per exam', 'validation Dice (mean over classes)', 'rotation loss')
    >>> axis_title("lr_encoder"), axis_title("val_loss"), axis_title("some_column")
    ('learning rate (encoder)', 'validation loss', 'some column')
    """
    col = str(column)
    if col in _AXIS_TITLES:
        return _AXIS_TITLES[col]
    if col.startswith("val_"):
        rest = col[4:]
        if rest == "dice_mean":
            return "validation Dice (mean over classes)"
        if rest.startswith("dice_"):
            return f"validation Dice ({rest[5:].replace('_', ' ')})"
        return "validation " + ({"loss": "loss", "score": "score"}.get(rest) or axis_title(rest))
    if col.startswith("lr_"):
        return f"learning rate ({col[3:].replace('_', ' ')})"
    if col.startswith("loss_"):
        return f"{col[5:].replace('_', ' ')} loss"
    return col.replace("_", " ")
