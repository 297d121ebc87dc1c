"""Folder objects: one convention for every folder whose layout the kit names, and the layouts outside a run.

A folder object is a frozen dataclass over one folder: ``.path`` is the folder (coerced to
:class:`~pathlib.Path`), every file or sub-folder is a property or method returning a path, and
the repr is ``Name('folder')``. They only name paths — nothing is read, created or checked — so
no other module spells a path of these layouts.

Here: :class:`Folder` (the convention), :class:`PreprocessDir` (``sapkit preprocess --out``),
:class:`JobsDir` (a job array's folder) and :class:`BundleDir` (an exported MONAI bundle). The
run folder and its parts (``RunDir``, ``ModelDir``, ``PredictionDir``, ``EvalDir``) are the same
kind of object in :mod:`sapkit.io.run_paths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Folder", "PreprocessDir", "JobsDir", "BundleDir"]


@dataclass(frozen=True)
class Folder:
    """Base of every folder object: ``path`` is the folder, coerced to :class:`~pathlib.Path`.

    Examples
    --------
    >>> Folder("out/x")
    Folder('out/x')
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


@dataclass(frozen=True, repr=False)
class PreprocessDir(Folder):
    """Paths of a ``sapkit preprocess`` output folder (a kit data folder)::

        OUT/manifest.yaml  OUT/manifest.csv                 the kit manifest (sapkit check, notebook 00)
        OUT/scans/<scan_id>/<scan_id>_{t1,b1000,adc,skeleton,lesion,fine}.nii.gz
        OUT/scans/<scan_id>/qc.json  <scan_id>_qc.png        per-scan QC record and seam figure
        OUT/qc/scans.csv  stations.csv  series.csv  skipped_files.csv  nyul.json  summary.html
        OUT/jobs/preprocess/                                with --executor: submitit logs, element states, defects/<scan_id>.json (named defects)

    Each scan folder is written in a hidden staging folder and renamed into place when complete.

    Examples
    --------
    >>> out = PreprocessDir("prep")
    >>> out.scan_file("p000_s0", "t1").as_posix(), out.table("scans").as_posix()
    ('prep/scans/p000_s0/p000_s0_t1.nii.gz', 'prep/qc/scans.csv')
    """

    @property
    def manifest_yaml(self) -> Path:
        """``manifest.yaml`` (its CSV is :attr:`manifest_csv`)."""
        return self.path / "manifest.yaml"

    @property
    def manifest_csv(self) -> Path:
        """``manifest.csv``: one row per preprocessed scan."""
        return self.path / "manifest.csv"

    @property
    def scans_dir(self) -> Path:
        """``scans/``: one folder per preprocessed scan."""
        return self.path / "scans"

    def scan_dir(self, scan_id: str) -> Path:
        """``scans/<scan_id>/``."""
        return self.scans_dir / scan_id

    def scan_file(self, scan_id: str, key: str) -> Path:
        """``scans/<scan_id>/<scan_id>_<key>.nii.gz`` (``t1``, ``b1000``, ``adc``, ``skeleton``, ``lesion``, ``fine``)."""
        return self.scan_dir(scan_id) / f"{scan_id}_{key}.nii.gz"

    def scan_qc_json(self, scan_id: str) -> Path:
        """``scans/<scan_id>/qc.json``: status, digest of the inputs and settings, per-station QC."""
        return self.scan_dir(scan_id) / "qc.json"

    def scan_qc_png(self, scan_id: str) -> Path:
        """``scans/<scan_id>/<scan_id>_qc.png``: coronal seam views before/after, b1000 after registration."""
        return self.scan_dir(scan_id) / f"{scan_id}_qc.png"

    @property
    def qc_dir(self) -> Path:
        """``qc/``: cohort QC tables and figures."""
        return self.path / "qc"

    def table(self, name: str) -> Path:
        """``qc/<name>.csv`` (``scans``, ``stations``, ``series``, ``skipped_files``)."""
        return self.qc_dir / f"{name}.csv"

    @property
    def nyul_json(self) -> Path:
        """``qc/nyul.json``: the learned standard scale (Nyúl) and the scans it was learned on."""
        return self.qc_dir / "nyul.json"

    @property
    def jobs(self) -> Path:
        """``jobs/preprocess/``: the job array of ``--executor local|slurm`` (logs, per-scan states)."""
        return self.path / "jobs" / "preprocess"

    def defect_json(self, scan_id: str) -> Path:
        """``jobs/preprocess/defects/<scan_id>.json``: status, message and digest of a scan with a named
        acquisition defect (``incomplete``/``inconsistent``), written by its job-array element."""
        return self.jobs / "defects" / f"{scan_id}.json"

    @property
    def summary_html(self) -> Path:
        """``qc/summary.html``: station factors and registration shifts of the cohort (plotly)."""
        return self.qc_dir / "summary.html"


@dataclass(frozen=True, repr=False)
class JobsDir(Folder):
    """The files of one job array (:mod:`sapkit.jobs.executors`; ``RunDir.jobs(name)``)::

        logs/  state/<name>.json  submissions.csv  states.csv
    """

    @property
    def logs(self) -> Path:
        """``logs/``: submitit's folder (submission scripts, stdout/stderr, pickles)."""
        return self.path / "logs"

    def state(self, name: str) -> Path:
        """``state/<name>.json``: written by the element (running, done, failed)."""
        return self.path / "state" / f"{name}.json"

    @property
    def submissions_csv(self) -> Path:
        """``submissions.csv``: one row per submission of an element."""
        return self.path / "submissions.csv"

    @property
    def states_csv(self) -> Path:
        """``states.csv``: the last :func:`sapkit.jobs.executors.element_states` table."""
        return self.path / "states.csv"


@dataclass(frozen=True, repr=False)
class BundleDir(Folder):
    """The files of an exported MONAI bundle (:mod:`sapkit.pipeline.bundle_export`)::

        LICENSE  configs/metadata.json  configs/inference.json  models/model.pt  docs/README.md
        scripts/__init__.py  scripts/sapkit_postprocess.py  inputs/<scan_id>.nii.gz (with --inputs)

    The bundle is built in :attr:`staging` (a hidden folder next to it, which also holds the
    export's writer lock) and renamed into place when complete.

    Examples
    --------
    >>> b = BundleDir("bundles/sap_fold0")
    >>> b.license.as_posix(), b.postprocess_py.as_posix(), b.staging.as_posix()
    ('bundles/sap_fold0/LICENSE', 'bundles/sap_fold0/scripts/sapkit_postprocess.py', 'bundles/.sap_fold0.sapkit-export')
    """

    @property
    def metadata_json(self) -> Path:
        """``configs/metadata.json``."""
        return self.path / "configs" / "metadata.json"

    @property
    def inference_json(self) -> Path:
        """``configs/inference.json``."""
        return self.path / "configs" / "inference.json"

    @property
    def model_pt(self) -> Path:
        """``models/model.pt``: the state dict."""
        return self.path / "models" / "model.pt"

    @property
    def readme(self) -> Path:
        """``docs/README.md``."""
        return self.path / "docs" / "README.md"

    @property
    def license(self) -> Path:
        """``LICENSE``: the licence of the weights and of the sapkit code in the bundle."""
        return self.path / "LICENSE"

    @property
    def scripts_init(self) -> Path:
        """``scripts/__init__.py``: makes ``scripts`` the package MONAI bundles import code from."""
        return self.path / "scripts" / "__init__.py"

    @property
    def postprocess_py(self) -> Path:
        """``scripts/sapkit_postprocess.py``: ``sapkit predict``'s post-processing (a copy of sapkit.pipeline.bundle_postprocess)."""
        return self.path / "scripts" / "sapkit_postprocess.py"

    @property
    def inputs(self) -> Path:
        """``inputs/``: the default ``dataset_dir`` of ``inference.json``."""
        return self.path / "inputs"

    def input_volume(self, scan_id: str) -> Path:
        """``inputs/<scan_id>.nii.gz``: one two-channel volume (:func:`sapkit.pipeline.bundle_export.stack_channels`)."""
        return self.inputs / f"{scan_id}.nii.gz"

    def files(self) -> list[Path]:
        """Every file of the bundle but its inputs."""
        return [self.license, self.metadata_json, self.inference_json, self.model_pt, self.readme, self.scripts_init,
                self.postprocess_py]

    @property
    def staging(self) -> Path:
        """``.<name>.sapkit-export`` next to the bundle: where it is built, and the export's lock (removed afterwards)."""
        return self.path.parent / f".{self.path.name}.sapkit-export"
