"""view(): backend choice (headless rule incl. a real papermill run), and what each backend is given.

The plotly backend's figure itself is tested in tests/plotting/test_slices.py.
"""

from __future__ import annotations

import gzip
import json
import sys
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from sapkit.errors import ConfigError
from sapkit.plotting import viewers as viz
from sapkit.plotting.colors import PREDICTION_COLOR, label_color

REPO = Path(__file__).resolve().parents[2]


def _volume(shape=(12, 10, 16)):
    image = np.linspace(0.0, 1.0, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    labels = np.zeros(shape, np.int16)
    labels[2:6, 3:7, 4:10] = 1
    labels[8:11, 2:5, 1:3] = 3
    prediction = np.zeros(shape, bool)
    prediction[3:6, 3:6, 5:9] = True
    return image, labels, prediction


# ----------------------------------------------------------------------------- select_backend
@pytest.mark.parametrize(("headless", "network", "installed", "expected"), [
    (True, True, viz.BACKENDS, "plotly"),                     # papermill/nbclient: never a live viewer
    (True, True, ("itkwidgets", "plotly"), "plotly"),
    (False, True, viz.BACKENDS, "ipyniivue"),                 # offline default wins over itkwidgets
    (False, False, viz.BACKENDS, "ipyniivue"),
    (False, True, ("itkwidgets", "plotly"), "itkwidgets"),    # only with network
    (False, False, ("itkwidgets", "plotly"), "plotly"),
    (False, True, ("plotly",), "plotly"),
])
def test_auto_rule(headless, network, installed, expected):
    assert viz.select_backend("auto", headless=headless, network=network, installed=installed) == expected


def test_auto_never_picks_itkwidgets_when_headless_or_offline():
    for headless in (True, False):
        for network in (True, False):
            chosen = viz.select_backend("auto", headless=headless, network=network, installed=("itkwidgets", "plotly"))
            assert (chosen == "itkwidgets") == (not headless and network)


def test_named_backend_is_honoured_or_explained():
    assert viz.select_backend("plotly", headless=True, installed=("plotly",)) == "plotly"
    assert viz.select_backend("ipyniivue", headless=True, installed=viz.BACKENDS) == "ipyniivue"
    with pytest.raises(ConfigError, match=r"'itkwidgets' is not installed.*itkwidgets\[lab\]==1.0a55"):
        viz.select_backend("itkwidgets", installed=("plotly",))
    with pytest.raises(ConfigError, match="unknown viewer backend 'vtk'"):
        viz.select_backend("vtk")


# ----------------------------------------------------------------------------- is_headless
def _fake_kernel(monkeypatch, parent):
    kernel = types.SimpleNamespace(get_parent=lambda channel="shell": parent)
    shell = types.SimpleNamespace(kernel=kernel)
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", fake)


def test_headless_without_kernel(monkeypatch):
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: None
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert viz.is_headless() is True


def test_jupyterlab_request_with_cell_id_is_interactive(monkeypatch):
    _fake_kernel(monkeypatch, {"header": {"msg_type": "execute_request"}, "metadata": {"cellId": "a1b2"}})
    assert viz.is_headless() is False
    assert viz.select_backend("auto", installed=viz.BACKENDS) == "ipyniivue"


def test_request_without_cell_id_is_headless(monkeypatch):
    _fake_kernel(monkeypatch, {"header": {"msg_type": "execute_request"}, "metadata": {}})
    assert viz.is_headless() is True
    assert viz.select_backend("auto", network=True, installed=viz.BACKENDS) == "plotly"


def test_importing_papermill_in_a_live_notebook_changes_nothing(monkeypatch):
    _fake_kernel(monkeypatch, {"metadata": {"cellId": "a1b2"}})
    monkeypatch.setitem(sys.modules, "papermill", types.ModuleType("papermill"))
    assert viz.is_headless() is False


def test_under_papermill_auto_is_plotly(tmp_path, monkeypatch):
    """A real papermill run: the kernel itself must decide it is headless."""
    papermill = pytest.importorskip("papermill")
    nbformat = pytest.importorskip("nbformat")
    kernel_dir = tmp_path / "jupyter" / "kernels" / "sapkit-viz-test"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sapkit viz test", "language": "python", "env": {"PYTHONPATH": str(REPO)}}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import numpy as np\nfrom sapkit.plotting import viewers as viz\n"
        "fig = viz.view(np.zeros((4, 4, 4), np.float32), spacing_mm=1.0)\n"
        "print(viz.is_headless(), viz.select_backend('auto', network=True, installed=viz.BACKENDS), type(fig).__name__)")]
    source, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(str(source), str(out), kernel_name="sapkit-viz-test", cwd=str(tmp_path),
                               progress_bar=False, log_output=False, execution_timeout=120)
    text = "".join(o.get("text", "") for o in nbformat.read(out, as_version=4).cells[0].outputs)
    assert text.split() == ["True", "plotly", "Figure"]


# ----------------------------------------------------------------------------- NIfTI bytes
@pytest.mark.parametrize("compress", [True, False])
def test_nifti_bytes_round_trip(compress):
    image, labels, _ = _volume()
    raw = viz.nifti_bytes(labels, spacing_mm=(1.5, 2.0, 4.0), compress=compress)
    assert (raw[:2] == b"\x1f\x8b") == compress
    img = nib.Nifti1Image.from_bytes(gzip.decompress(raw) if compress else raw)
    np.testing.assert_array_equal(np.asarray(img.dataobj), labels)
    assert img.get_data_dtype() == np.int16
    np.testing.assert_allclose(img.header.get_zooms(), (1.5, 2.0, 4.0))
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1


# ----------------------------------------------------------------------------- ipyniivue
def test_ipyniivue_receives_volumes_spacing_and_label_colours():
    pytest.importorskip("ipyniivue")
    import ipyniivue

    image, labels, prediction = _volume()
    four_d = np.stack([image * 0, image])
    nv = viz.view(four_d, labels, prediction, spacing_mm=(1.5, 2.0, 4.0), backend="ipyniivue", channel=1,
                  label_names={1: "cervical spine", 3: "lumbar spine"})
    assert isinstance(nv, ipyniivue.NiiVue)
    assert nv.opts.slice_type == ipyniivue.SliceType.MULTIPLANAR
    assert nv.opts.multiplanar_show_render == ipyniivue.ShowRender.ALWAYS
    assert [v.name for v in nv.volumes] == ["image.nii.gz", "labels.nii.gz", "prediction.nii.gz"]
    decoded = [nib.Nifti1Image.from_bytes(gzip.decompress(v.data)) for v in nv.volumes]
    np.testing.assert_allclose(np.asarray(decoded[0].dataobj), image)       # channel 1 chosen
    np.testing.assert_array_equal(np.asarray(decoded[1].dataobj), labels)
    np.testing.assert_array_equal(np.asarray(decoded[2].dataobj), prediction.astype(np.int16))
    for img in decoded:
        np.testing.assert_allclose(img.header.get_zooms(), (1.5, 2.0, 4.0))
    lut = np.asarray(nv.volumes[1].colormap_label.lut).reshape(-1, 4)    # RGBA per value 0..max
    assert lut.shape[0] == 4 and lut[0, 3] == 0 and lut[2, 3] == 0       # 0 and the absent 2 transparent
    assert tuple(lut[1, :3]) == viz._hex_rgb(label_color(1)) and tuple(lut[3, :3]) == viz._hex_rgb(label_color(3))
    names = nv.volumes[1].colormap_label.labels
    assert (names[1], names[3]) == ("cervical spine", "lumbar spine")
    pred_lut = np.asarray(nv.volumes[2].colormap_label.lut).reshape(-1, 4)
    assert tuple(pred_lut[1]) == (*viz._hex_rgb(PREDICTION_COLOR), 255)


# ----------------------------------------------------------------------------- itkwidgets
def test_itkwidgets_gets_image_labels_and_spacing(monkeypatch):
    itkwidgets = pytest.importorskip("itkwidgets", reason="optional extra: pip install itkwidgets==1.0a55 ngff-zarr==0.32.2")
    pytest.importorskip("ngff_zarr")
    captured = {}
    monkeypatch.setattr(itkwidgets, "view", lambda **kwargs: captured.update(kwargs) or "viewer")
    image, labels, prediction = _volume()
    assert viz.view(image, labels, prediction, spacing_mm=(1.5, 2.0, 4.0), backend="itkwidgets") == "viewer"
    ngff_image, ngff_labels = captured["image"], captured["label_image"]
    for ngff in (ngff_image, ngff_labels):
        assert ngff.dims == ("z", "y", "x")
        assert ngff.scale == {"x": 1.5, "y": 2.0, "z": 4.0}
    np.testing.assert_allclose(np.asarray(ngff_image.data).transpose(2, 1, 0), image)
    expected = labels.copy()
    expected[prediction] = 4  # prediction gets the value after the largest label
    np.testing.assert_array_equal(np.asarray(ngff_labels.data).transpose(2, 1, 0), expected)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"image": np.zeros((4, 4))}, ConfigError, r"\(X, Y, Z\) or \(C, X, Y, Z\)"),
    ({"labels": np.zeros((4, 4, 5), np.int16)}, ConfigError, "labels shape"),
    ({"prediction": np.zeros((4, 4, 4), np.float32)}, ConfigError, "threshold a probability map"),
    ({"spacing_mm": (1.0, 0.0, 1.0)}, ConfigError, "3 positive numbers"),
    ({"image": np.zeros((2, 4, 4, 4)), "channel": 2}, ConfigError, "channel 2 does not exist"),
    ({"axis": "oblique"}, ConfigError, "axis must be one of"),
])
def test_bad_view_inputs(kwargs, error, match):
    args = {"image": np.zeros((4, 4, 4)), "spacing_mm": 1.0, "backend": "plotly", **kwargs}
    with pytest.raises(error, match=match):
        viz.view(args.pop("image"), **args)


def test_plotly_backend_is_the_slice_viewer_with_named_labels():
    image, labels, prediction = _volume()
    fig = viz.view(image, labels, prediction, spacing_mm=(1.5, 2.0, 4.0), backend="plotly",
                   label_names={1: "cervical spine"})
    assert [t.name for t in fig.data] == ["image", "cervical spine", "label 3", "prediction"]
    assert fig.data[-1].marker.color == PREDICTION_COLOR and len(fig.frames) == 10
