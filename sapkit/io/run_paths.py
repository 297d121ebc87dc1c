"""Run folders: the contract between stages, and the one home of every run-folder path.

Every stage takes ``run_dir`` and reads what earlier stages wrote there; :class:`RunDir` names
each of those files, so no other module spells a run-folder path. The layout::

    runs/<name>/
      config.yaml  versions.json  splits.json  fingerprint.json  report.html
      data/manifest.yaml  data/manifest.csv  data/...NIfTI
      labels/<scan_id>_skeleton_{propagated,global}.nii.gz  labels/propagation_dice.csv  labels/skeleton_qc.csv
      skeleton/  ssl/  lesion/<init>/fold_<k>/  lesion/<init>/fold_tune/     (a ModelDir each)
          model_final.pt  model_best.pt  checkpoint_last.pt  log.csv  transfer.csv  MODEL_CARD.md
      predictions/<init>/<scan_id>_prob.nii.gz                                (a PredictionDir each)
      eval/threshold.json  eval/<table>.csv  eval/table1.md
      figures/<name>.json
      notebooks/<name>.ipynb  notebooks/<name>.done.json
      jobs/<array>/                                                            (SLURM/local job arrays)

The run's record (resolved ``config.yaml``, ``versions.json``) is written by :mod:`sapkit.io.run_record`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sapkit.errors import ConfigError
from sapkit.io.folders import Folder

__all__ = [
    "RunDir",
    "ModelDir",
    "PredictionDir",
    "EvalDir",
    "PROB_SUFFIX",
    "default_run_dir",
    "notebook_run_dir",
]

#: File-name ending of a probability map: ``<scan_id>_prob.nii.gz``.
PROB_SUFFIX = "_prob.nii.gz"
_MASK_SUFFIX = "_mask.nii.gz"
_LESIONS_SUFFIX = "_lesions.csv"
_MODEL_FILES = {"final": "model_final.pt", "best": "model_best.pt"}


@dataclass(frozen=True, repr=False)
class ModelDir(Folder):
    """A task folder written by :func:`sapkit.training.engine.fit` (``skeleton/``, ``ssl/``,
    ``lesion/<init>/fold_<k>/``).

    Attributes
    ----------
    path : Path
        The folder itself.
    """

    def model(self, which: Literal["final", "best"] = "final") -> Path:
        """``model_final.pt`` (after the last epoch) or ``model_best.pt`` (best validation score)."""
        if which not in _MODEL_FILES:
            raise ConfigError(f"model checkpoint must be 'final' or 'best', got {which!r}")
        return self.path / _MODEL_FILES[which]

    @property
    def checkpoint_last(self) -> Path:
        """``checkpoint_last.pt``: the resumable state after the latest epoch (removed when finished)."""
        return self.path / "checkpoint_last.pt"

    @property
    def log_csv(self) -> Path:
        """``log.csv``: one row per epoch (losses, learning rates, validation, seconds)."""
        return self.path / "log.csv"

    @property
    def transfer_csv(self) -> Path:
        """``transfer.csv``: the weight-transfer report of a lesion model initialised from SAP/SSL."""
        return self.path / "transfer.csv"

    @property
    def model_card(self) -> Path:
        """``MODEL_CARD.md``: what the model is, was trained on, and is (not) for."""
        return self.path / "MODEL_CARD.md"



@dataclass(frozen=True, repr=False)
class PredictionDir(Folder):
    """A folder of per-scan prediction files (``predictions/<init>/`` or ``sapkit predict --out``).

    Attributes
    ----------
    path : Path
        The folder itself.
    """

    def probability_map(self, scan_id: str) -> Path:
        """``<scan_id>_prob.nii.gz``: lesion probability in [0, 1] on the scan's input grid."""
        return self.path / f"{scan_id}{PROB_SUFFIX}"

    def mask(self, scan_id: str) -> Path:
        """``<scan_id>_mask.nii.gz``: the thresholded binary lesion mask (uint8)."""
        return self.path / f"{scan_id}{_MASK_SUFFIX}"

    def lesion_table(self, scan_id: str) -> Path:
        """``<scan_id>_lesions.csv``: one row per predicted lesion."""
        return self.path / f"{scan_id}{_LESIONS_SUFFIX}"

    @property
    def summary_csv(self) -> Path:
        """``predictions.csv``: one row per predicted scan (file paths, lesion count, windows, seconds)."""
        return self.path / "predictions.csv"

    @property
    def eval_dir(self) -> EvalDir:
        """``eval/`` inside this folder: where ``sapkit evaluate --manifest`` writes by default."""
        return EvalDir(self.path / "eval")

    def scan_ids(self) -> list[str]:
        """Scan ids that have a probability map here, sorted; empty when the folder is missing."""
        if not self.path.is_dir():
            return []
        return sorted(p.name[: -len(PROB_SUFFIX)] for p in self.path.glob(f"*{PROB_SUFFIX}"))



@dataclass(frozen=True, repr=False)
class EvalDir(Folder):
    """A folder of evaluation tables (``run_dir/eval/`` or ``sapkit evaluate --out``).

    Attributes
    ----------
    path : Path
        The folder itself.
    """

    def table(self, name: str) -> Path:
        """``<name>.csv`` (``lesions``, ``predictions``, ``patients``, ``froc``, ``comparisons``, ``table1`` …)."""
        return self.path / f"{name}.csv"

    @property
    def threshold_json(self) -> Path:
        """``threshold.json``: the probability threshold per init, tuned on the tuning fold."""
        return self.path / "threshold.json"

    @property
    def table1_md(self) -> Path:
        """``table1.md``: Table 1 as a markdown pipe table."""
        return self.path / "table1.md"



@dataclass(frozen=True, repr=False)
class RunDir(Folder):
    """Every path of a run folder (see the module docstring for the layout).

    Attributes
    ----------
    path : Path
        The run folder (``runs/<profile>`` by default); ``root`` is the same path under its old name.

    Examples
    --------
    >>> rd = RunDir("runs/demo")
    >>> rd.lesion("sap", 3).path.as_posix(), rd.lesion_model("ssl", "tune").as_posix()
    ('runs/demo/lesion/sap/fold_3', 'runs/demo/lesion/ssl/fold_tune/model_final.pt')
    >>> rd.probability_map("sap", "p01_s0").as_posix()
    'runs/demo/predictions/sap/p01_s0_prob.nii.gz'
    """

    @property
    def root(self) -> Path:
        """The run folder: the same as :attr:`path` (the name notebooks and scripts written before used)."""
        return self.path

    # -- run metadata -------------------------------------------------------------------------
    @property
    def config_yaml(self) -> Path:
        """``config.yaml``: the resolved configuration."""
        return self.path / "config.yaml"

    @property
    def versions_json(self) -> Path:
        """``versions.json``: library versions and the GPU (:func:`sapkit.io.run_record.library_versions`)."""
        return self.path / "versions.json"

    @property
    def splits_json(self) -> Path:
        """``splits.json``: patient folds, tuning fold, healthy train/validation subjects."""
        return self.path / "splits.json"

    @property
    def fingerprint_json(self) -> Path:
        """``fingerprint.json``: the dataset fingerprint (spacing, shapes, intensities)."""
        return self.path / "fingerprint.json"

    @property
    def report_html(self) -> Path:
        """``report.html``: the offline run report."""
        return self.path / "report.html"

    @property
    def lock_file(self) -> Path:
        """``.sapkit.lock``: the writer lock, holder in ``.sapkit.lock.json`` (:mod:`sapkit.io.run_lock`)."""
        return self.path / ".sapkit.lock"

    # -- data ---------------------------------------------------------------------------------
    @property
    def data(self) -> Path:
        """``data/``: the run's manifest folder (synthetic cohort or a user's data)."""
        return self.path / "data"

    @property
    def raw(self) -> Path:
        """``raw/``: the synthetic raw acquisitions (DICOM + per-station NIfTI) that ``sapkit preprocess`` reads."""
        return self.path / "raw"

    @staticmethod
    def data_dir(run_dir: str | Path, data: str | Path | None = None) -> Path:
        """The manifest folder to read: ``data`` when given, else ``run_dir/data``."""
        return Path(data) if data is not None else RunDir(run_dir).data

    # -- skeleton labelling (notebook 01) ----------------------------------------------------
    @property
    def labels_dir(self) -> Path:
        """``labels/``: propagated skeleton labels and their quality-control tables."""
        return self.path / "labels"

    def propagated_label(self, scan_id: str, stage: Literal["per-bone", "global"] = "per-bone") -> Path:
        """``labels/<scan_id>_skeleton_propagated.nii.gz`` (per-bone stage) or ``..._skeleton_global.nii.gz``."""
        if stage not in ("per-bone", "global"):
            raise ConfigError(f"propagation stage must be 'per-bone' or 'global', got {stage!r}")
        return self.labels_dir / f"{scan_id}_skeleton_{'propagated' if stage == 'per-bone' else 'global'}.nii.gz"

    @property
    def propagation_dice_csv(self) -> Path:
        """``labels/propagation_dice.csv``: per-bone Dice of every propagated scan and stage."""
        return self.labels_dir / "propagation_dice.csv"

    @property
    def skeleton_qc_csv(self) -> Path:
        """``labels/skeleton_qc.csv``: per-bone volumes of every labelled scan with outliers flagged."""
        return self.labels_dir / "skeleton_qc.csv"

    # -- models -------------------------------------------------------------------------------
    @property
    def skeleton(self) -> ModelDir:
        """``skeleton/``: the SAP skeleton model."""
        return ModelDir(self.path / "skeleton")

    @property
    def ssl(self) -> ModelDir:
        """``ssl/``: the self-supervised model."""
        return ModelDir(self.path / "ssl")

    @property
    def lesion_dir(self) -> Path:
        """``lesion/``: every lesion model, one folder per init."""
        return self.path / "lesion"

    def lesion(self, init: str, fold: int | str) -> ModelDir:
        """``lesion/<init>/fold_<fold>/``; ``fold`` is a test fold id (int or str) or ``"tune"``."""
        return ModelDir(self.lesion_dir / str(init) / f"fold_{fold}")

    def lesion_model(self, init: str, fold: int | str, which: Literal["final", "best"] = "final") -> Path:
        """``lesion/<init>/fold_<fold>/model_<which>.pt``."""
        return self.lesion(init, fold).model(which)

    # -- predictions and evaluation -----------------------------------------------------------
    @property
    def predictions_dir(self) -> Path:
        """``predictions/``: one folder of probability maps per init."""
        return self.path / "predictions"

    def predictions(self, init: str) -> Path:
        """``predictions/<init>/``: the probability maps of every held-out patient scan."""
        return self.predictions_dir / str(init)

    def probability_map(self, init: str, scan_id: str) -> Path:
        """``predictions/<init>/<scan_id>_prob.nii.gz``."""
        return PredictionDir(self.predictions(init)).probability_map(scan_id)

    @property
    def eval_dir(self) -> Path:
        """``eval/``: the cohort evaluation (threshold, tables)."""
        return self.path / "eval"

    def eval_table(self, name: str) -> Path:
        """``eval/<name>.csv`` (``lesions``, ``predictions``, ``patients``, ``froc``, ``comparisons``, ``table1`` …)."""
        return EvalDir(self.eval_dir).table(name)

    @property
    def threshold_json(self) -> Path:
        """``eval/threshold.json``: the probability threshold per init, tuned on the tuning fold."""
        return EvalDir(self.eval_dir).threshold_json

    @property
    def table1_md(self) -> Path:
        """``eval/table1.md``: Table 1 as a markdown pipe table."""
        return EvalDir(self.eval_dir).table1_md

    # -- figures and notebooks ----------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        """``figures/``: plotly figures (JSON) collected into ``report.html``."""
        return self.path / "figures"

    def figure_json(self, name: str) -> Path:
        """``figures/<name>.json``."""
        return self.figures_dir / f"{name}.json"

    @property
    def notebooks_dir(self) -> Path:
        """``notebooks/``: the executed notebooks and their completion markers."""
        return self.path / "notebooks"

    def notebook(self, name: str) -> Path:
        """``notebooks/<name>.ipynb``: the executed copy of notebook ``name``."""
        return self.notebooks_dir / f"{name}.ipynb"

    def notebook_marker(self, name: str) -> Path:
        """``notebooks/<name>.done.json``: written when notebook ``name`` finished (digest, seconds, parameters)."""
        return self.notebooks_dir / f"{name}.done.json"

    def jobs(self, name: str) -> Path:
        """``jobs/<name>/``: one job array's folder (submitit logs, per-element state files)."""
        return self.path / "jobs" / str(name)

    def notebook_markers(self) -> dict[str, Path]:
        """Notebook name → completion marker, for every finished notebook, sorted by name."""
        suffix = ".done.json"
        if not self.notebooks_dir.is_dir():
            return {}
        return {p.name[: -len(suffix)]: p for p in sorted(self.notebooks_dir.glob(f"*{suffix}"))}


def default_run_dir(profile: str | Path) -> Path:
    """``runs/<profile>`` relative to the current folder; for a profile YAML file, ``runs/<file name stem>``.

    Examples
    --------
    >>> default_run_dir("demo").as_posix(), default_run_dir("/lab/profiles/big.yaml").as_posix()
    ('runs/demo', 'runs/big')
    """
    name = str(profile)
    return Path("runs") / (Path(name).stem if name.endswith((".yaml", ".yml")) else name)


def notebook_run_dir(run_dir: str | Path) -> Path:
    """A notebook's ``run_dir`` made absolute: a relative path counts from the repository root
    (the folder holding ``notebooks/`` next to the installed package), else from the current folder,
    so ``jupyter lab notebooks/`` and ``sapkit reproduce`` write the same ``runs/<profile>``."""
    path = Path(run_dir).expanduser()
    if path.is_absolute():
        return path
    repo = Path(__file__).resolve().parents[2]
    return ((repo if (repo / "notebooks").is_dir() else Path.cwd()) / path).resolve()
