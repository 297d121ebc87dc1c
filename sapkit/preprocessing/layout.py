"""Where ``sapkit preprocess`` writes: the layout of its output folder (a kit data folder).

::

    OUT/manifest.yaml  OUT/manifest.csv                 the kit manifest (sapkit check, notebook 00)
    OUT/scans/<scan_id>/<scan_id>_{t1,b1000,adc,skeleton,lesion,fine}.nii.gz
    OUT/scans/<scan_id>/qc.json  <scan_id>_qc.png        per-scan QC record and seam figure
    OUT/qc/scans.csv  stations.csv  series.csv  skipped_files.csv  nyul.json  summary.html
    OUT/jobs/preprocess/                                with --executor: submitit logs, element states

Each scan folder is written in a hidden staging folder and renamed into place when complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PreprocessDir"]


@dataclass(frozen=True)
class PreprocessDir:
    """Paths of a ``sapkit preprocess`` output folder.

    Examples
    --------
    >>> out = PreprocessDir("prep")
    >>> out.scan_file("p000_s0", "t1").as_posix(), out.table("scans").as_posix()
    ('prep/scans/p000_s0/p000_s0_t1.nii.gz', 'prep/qc/scans.csv')
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def manifest_yaml(self) -> Path:
        """``manifest.yaml`` (its CSV is ``manifest.csv``)."""
        return self.root / "manifest.yaml"

    @property
    def scans_dir(self) -> Path:
        """``scans/``: one folder per preprocessed scan."""
        return self.root / "scans"

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
        return self.root / "qc"

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
        return self.root / "jobs" / "preprocess"

    @property
    def summary_html(self) -> Path:
        """``qc/summary.html``: station factors and registration shifts of the cohort (plotly)."""
        return self.qc_dir / "summary.html"
