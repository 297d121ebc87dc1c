"""Quality control of preprocessing: seam views, N4 fields, station factors, registration shifts.

Per scan a PNG montage (no plotting library needed, opens anywhere): coronal slices through the
body before correction (raw stations stitched), after N4 + standardisation, and b1000 after
registration, head at the top, patient's right on the left, station seams ticked on both sides.
For the notebook and the cohort summary: plotly figures of the same views, of an N4 field, of
the standardisation factors and of the registration shifts (against the truth when known).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from sapkit.imaging.window import display_window, to_grey
from sapkit.io.atomic import atomic_path

__all__ = ["write_png", "coronal_index", "seam_montage", "seam_figure", "n4_field_figure", "factors_figure",
           "shifts_figure", "write_summary_html"]


def write_png(path: str | Path, image: npt.ArrayLike) -> Path:
    """Write a (H, W) uint8 grey image as PNG (atomically)."""
    img = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    h, w = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)
    return path


def coronal_index(mask: npt.ArrayLike) -> int:
    """The coronal plane (index along Y) holding the most body voxels."""
    counts = np.asarray(mask, dtype=bool).sum(axis=(0, 2))
    return int(np.argmax(counts)) if counts.any() else np.asarray(mask).shape[1] // 2


def _window(plane: npt.NDArray, ref: npt.NDArray) -> npt.NDArray[np.uint8]:
    """``plane`` in grey levels under the kit's display window of ``ref``'s positive voxels (all if none is)."""
    positive = ref > 0
    return to_grey(plane, display_window(ref, mask=positive if positive.any() else None))


def _display(plane: npt.NDArray, spacing_xz: tuple[float, float]) -> npt.NDArray:
    """(X, Z) plane → rows = Z from the head, columns = patient's right on the left, square pixels."""
    img = plane[::-1, ::-1].T  # rows: Z descending (head first); columns: X descending (RAS +X is the patient's right)
    fx, fz = spacing_xz
    base = min(fx, fz)
    return np.repeat(np.repeat(img, max(1, round(fz / base)), axis=0), max(1, round(fx / base)), axis=1)


def seam_montage(processed, *, y_index: int | None = None) -> npt.NDArray[np.uint8]:
    """(H, W) uint8 montage: before | after | b1000, coronal, with station seams ticked.

    Parameters
    ----------
    processed : ProcessedScan
        The output of :func:`sapkit.preprocessing.pipeline.preprocess_scan`.
    y_index : int, optional
        Coronal plane (default: the one with most body voxels).
    """
    mask = processed.extras["body_mask"]
    y = coronal_index(mask) if y_index is None else int(y_index)
    spacing = np.sqrt((processed.affine[:3, :3] ** 2).sum(axis=0))
    panels = []
    for image in (processed.extras["t1_before"], processed.t1, processed.b1000):
        plane = _window(image[:, y, :], image[mask] if mask.any() else image)
        panel = _display(plane, (spacing[0], spacing[2]))
        z0, step = processed.affine[2, 3], processed.affine[2, 2]
        rows_per_slice = panel.shape[0] / image.shape[2]
        for lo, hi in processed.extras.get("station_z_mm", []):
            for z in (lo, hi):
                k = int(round((z - z0) / step))
                r = int(np.clip((image.shape[2] - 1 - k) * rows_per_slice, 0, panel.shape[0] - 1))
                panel[r, :4] = panel[r, -4:] = 255
        panels.append(np.pad(panel, ((0, 0), (0, 4))))
    return np.concatenate(panels, axis=1)


def seam_figure(processed, *, title: str = "", y_index: int | None = None):
    """Plotly figure of the coronal seam views (before | after N4 + standardisation | b1000)."""
    import plotly.express as px

    montage = seam_montage(processed, y_index=y_index)
    fig = px.imshow(montage, color_continuous_scale="gray", zmin=0, zmax=255, aspect="equal",
                    title=title or "coronal: raw stations stitched | after N4 + standardisation | b1000 on T1")
    fig.update_layout(coloraxis_showscale=False, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def n4_field_figure(processed, station: int = 1, *, title: str = ""):
    """Plotly heat map of the N4 field of one T1 station (coronal plane through its centre)."""
    import plotly.express as px

    fields = processed.extras["n4_fields"]
    if not fields:
        raise ValueError("this scan was preprocessed with raw.n4.enabled=false: no N4 field to show")
    field, affine = fields[int(station) - 1]
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    plane = _display(field[:, field.shape[1] // 2, :], (spacing[0], spacing[2]))
    fig = px.imshow(plane, color_continuous_scale="RdBu_r", zmin=float(field.min()), zmax=float(field.max()),
                    aspect="equal", title=title or f"N4 field, T1 station {station} (corrected = image / field)")
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def factors_figure(stations: pd.DataFrame):
    """Standardisation factor per station (one line per scan and sequence)."""
    import plotly.express as px

    table = stations.assign(scan=stations["scan_id"] + " " + stations["sequence"])
    fig = px.line(table, x="station", y="isis_factor", color="scan", markers=True, facet_col="sequence",
                  title="Inter-station standardisation factor (1 = reference station)")
    fig.update_xaxes(dtick=1)
    return fig


def shifts_figure(stations: pd.DataFrame, truth: pd.DataFrame | None = None):
    """Registration shift (mm) per DWI station; against the known shift when ``truth`` is given.

    ``truth`` has ``scan_id, sequence, station, shift_x_mm, shift_y_mm, shift_z_mm`` (the
    synthetic raw cohort's ``truth/stations.csv``).
    """
    import plotly.express as px

    dwi = stations[stations["sequence"] == "dwi"]
    long = dwi.melt(id_vars=["scan_id", "station"], value_vars=["shift_x_mm", "shift_y_mm", "shift_z_mm"],
                    var_name="axis", value_name="found_mm")
    if truth is None:
        return px.bar(long, x="station", y="found_mm", color="axis", barmode="group", facet_col="scan_id",
                      title="DWI → T1 registration shift per station (mm, RAS+)")
    known = truth[truth["sequence"] == "dwi"].melt(id_vars=["scan_id", "station"],
                                                   value_vars=["shift_x_mm", "shift_y_mm", "shift_z_mm"],
                                                   var_name="axis", value_name="true_mm")
    both = long.merge(known, on=["scan_id", "station", "axis"])
    fig = px.scatter(both, x="true_mm", y="found_mm", color="axis", hover_data=["scan_id", "station"],
                     title="DWI → T1 registration: recovered vs known station shift (mm)")
    lim = float(np.abs(both[["true_mm", "found_mm"]].to_numpy()).max() + 1) if len(both) else 10.0
    fig.add_shape(type="line", x0=-lim, y0=-lim, x1=lim, y1=lim, line=dict(dash="dot", color="grey"))
    return fig


def write_summary_html(path: str | Path, stations: pd.DataFrame, scans: pd.DataFrame,
                       truth: pd.DataFrame | None = None) -> Path:
    """One offline HTML page: scan table, standardisation factors and registration shifts."""
    from plotly.offline import get_plotlyjs

    parts: Sequence[str] = [f"<h1>sapkit preprocess — QC</h1>{scans.to_html(index=False)}"]
    if len(stations):
        parts = list(parts) + [fig.to_html(full_html=False, include_plotlyjs=False)
                               for fig in (factors_figure(stations), shifts_figure(stations, truth))]
    html = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>sapkit preprocess QC</title>"
            f"<script>{get_plotlyjs()}</script></head><body>{''.join(parts)}</body></html>")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(html)
    return path
