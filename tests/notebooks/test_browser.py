"""The notebooks' interactive pieces in a real browser: JupyterLab + headless Debian Chromium.

Starts JupyterLab on 127.0.0.1 (free port, random token, throw-away config/settings) in the
``notebooks/`` folder of a stand-in checkout (the package and the notebooks copied into the test's
folder, the kernel importing that copy, so ``runs/`` is the checkout's own), opens
``tests/fixtures/browser_demo.ipynb`` with the ``sapkit`` kernel, runs all cells with a live kernel,
moves the threshold slider, and checks: the ipyniivue canvas holds a WebGL2 context and drew
something, plotly figures are drawn, the slider changed the lesion table, and neither a page error
nor a console error from widget/plotly/niivue code occurred. Screenshots go to a temporary run
folder whose path is printed (``pytest -s``) and shown in failure messages.

Needs ``/usr/bin/chromium`` (Debian package ``chromium``) and the ``playwright`` Python package;
the browser is never downloaded.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tests" / "fixtures" / "browser_demo.ipynb"
CHROMIUM = Path("/usr/bin/chromium")


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return "no /usr/bin/chromium: install the Debian package `chromium` to run the browser test"
    for module, hint in (("playwright", "pip install playwright (the browser itself comes from Debian)"),
                         ("jupyterlab", "pip install jupyterlab")):
        if importlib.util.find_spec(module) is None:
            return f"no {module}: {hint}"
    return None


# Decided at collection, before any fixture: without Chromium neither the JupyterLab server nor the
# session's smoke series (which notebook 05 needs) is built for these tests.
MISSING = _missing()
pytestmark = [pytest.mark.browser, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SWIFTSHADER_FLAGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
# Console errors from these sources fail the test; offline JupyterLab logs unrelated ones.
OWN_SOURCES = re.compile(r"widget|plotly|niivue|anywidget|ipywidgets|jupyter-widgets|nouislider", re.I)
N_CODE_CELLS = sum(c["cell_type"] == "code" for c in json.loads(DEMO.read_text())["cells"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout_s} s")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("browser_run")
    print(f"\nbrowser test run folder (screenshots, logs): {folder}")
    return folder


NOTEBOOK_05 = "05_lesion_analysis.ipynb"


@pytest.fixture(scope="module")
def checkout(run_dir) -> Path:
    """A fresh-clone stand-in: ``sapkit/`` and ``notebooks/`` (05 and the demo notebook) copied; the kernel
    imports this copy (PYTHONPATH), so its notebooks' ``run_dir = "auto"`` looks in ``checkout/runs``."""
    folder = run_dir / "checkout"
    shutil.copytree(REPO / "sapkit", folder / "sapkit", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / NOTEBOOK_05, folder / "notebooks" / NOTEBOOK_05)
    shutil.copy(DEMO, folder / "notebooks" / DEMO.name)
    (folder / "runs").mkdir()
    return folder


@pytest.fixture(scope="module")
def lab(run_dir, checkout):
    """A private JupyterLab server started as ``jupyter lab notebooks/`` in the checkout; yields (base_url, token)."""
    from jupyter_client.kernelspec import KernelSpecManager

    root = checkout / "notebooks"
    home = run_dir / "jupyter"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")])))
    # Render every cell (no virtual scrolling) and skip the news prompt.
    tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    labconfig = home / "config" / "labconfig" / "page_config.json"
    labconfig.parent.mkdir(parents=True)
    labconfig.write_text(json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    if "sapkit" not in KernelSpecManager().find_kernel_specs():
        # The lead registers it with `python -m ipykernel install --sys-prefix --name sapkit`;
        # without that, an equivalent private spec for this interpreter.
        spec = home / "path" / "kernels" / "sapkit"
        spec.mkdir(parents=True)
        spec.joinpath("kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python (sapkit)", "language": "python", "env": {"PYTHONPATH": str(checkout)}}))
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(home / "path"), env.get("JUPYTER_PATH")]))
    port, token = _free_port(), secrets.token_hex(16)
    log = (run_dir / "jupyterlab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
         "--allow-root"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/api/status?token={token}", 90, proc)
        yield base, token
    finally:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _launch(playwright, profile: Path, extra_flags: list[str]):
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS + extra_flags,
        viewport={"width": 1400, "height": 1000})


def _open_notebook(page, base: str, token: str, name: str) -> None:
    """Open ``name`` in its own fresh JupyterLab workspace (no tab of an earlier test restored) and wait
    until its kernel is idle."""
    workspace = re.sub(r"\W", "", Path(name).stem)
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{name}?reset&token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=name).first.click()
    page.wait_for_function("() => /Python \\(sapkit\\)\\s*\\|\\s*Idle/.test(document.querySelector("
                           "'.jp-StatusBar-Widget, #jp-main-statusbar')?.innerText || '')", timeout=90_000)


def _run_all_cells(page, n_cells: int, timeout_ms: int, shot: Path) -> None:
    """Run → Run All Cells, then wait until every code cell ran; fail at once (with the error text)
    when the run stopped early (a cell raised: the cells after it are never run)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    page.wait_for_timeout(3000)  # let the queue show: every cell [*]
    outcome = page.wait_for_function(
        "(n) => { const p = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell "
        ".jp-InputPrompt')].map(e => e.innerText);"
        " if (p.length === n && p.every(t => /\\[\\d+\\]/.test(t))) return 'done';"
        " const idle = /Idle/.test(document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar')?.innerText || '');"
        " if (idle && !p.some(t => /\\[\\*\\]/.test(t))) return 'stopped'; return false; }",
        arg=n_cells, timeout=timeout_ms, polling=1000).json_value()
    page.screenshot(path=str(shot), full_page=True)
    if outcome != "done":
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        raise AssertionError(f"Run All stopped before the last cell (see {shot}):\n" + "\n---\n".join(errors)[-4000:])


def _bright_fraction(page, png: bytes) -> float:
    """Fraction of pixels of a screenshot brighter than near-black, measured by the browser."""
    return page.evaluate("""async (b64) => {
        const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
        const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) n++;
        return n / (d.length / 4);
    }""", base64.b64encode(png).decode())


def test_demo_notebook_in_chromium(lab, run_dir):
    from playwright.sync_api import sync_playwright

    base, token = lab
    errors: list[str] = []
    console_log: list[str] = []
    with sync_playwright() as p:
        flags: list[str] = []
        context = _launch(p, run_dir / "profile0", flags)
        probe = context.new_page()
        if not probe.evaluate("() => !!document.createElement('canvas').getContext('webgl2')"):
            context.close()
            flags = SWIFTSHADER_FLAGS
            context = _launch(p, run_dir / "profile1", flags)
            probe = context.new_page()
        probe.close()
        page = context.pages[0] if context.pages else context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))

        def _on_console(msg):
            url = (msg.location or {}).get("url", "")
            console_log.append(f"{msg.type}: {msg.text} ({url})")
            if msg.type == "error" and (OWN_SOURCES.search(msg.text) or OWN_SOURCES.search(url)):
                errors.append(f"console error: {msg.text} ({url})")

        page.on("console", _on_console)
        try:
            _open_notebook(page, base, token, DEMO.name)
            _run_all_cells(page, N_CODE_CELLS, 120_000, run_dir / "01_after_run_all.png")
            outputs = page.locator(".jp-CodeCell .jp-OutputArea")  # cells: parameters, imports, data, 3D, plotly, explorer

            # 0) the kernel saw a live frontend: auto would pick the offline interactive viewer
            assert "auto viewer backend here: ipyniivue" in outputs.nth(1).inner_text()

            # 1) ipyniivue: a WebGL2 canvas that drew the volume
            viewer = outputs.nth(3)
            canvas = viewer.locator("canvas").first
            canvas.wait_for(state="visible", timeout=60_000)
            canvas.scroll_into_view_if_needed()
            page.wait_for_timeout(2000)  # let NiiVue upload the volumes and draw
            # getContext('2d') is null only if a WebGL context already exists; then 'webgl2' must return it
            webgl = canvas.evaluate("c => ({twoD: c.getContext('2d') === null, webgl2: !!c.getContext('webgl2'),"
                                    " w: c.width, h: c.height})")
            assert webgl["twoD"] and webgl["webgl2"] and webgl["w"] > 100 and webgl["h"] > 100, webgl
            shot = viewer.screenshot(path=str(run_dir / "02_ipyniivue_viewer.png"))
            assert _bright_fraction(page, shot) > 0.05, "the NiiVue canvas stayed black"

            # 2) plotly: the slice viewer is drawn (svg + heatmap image)
            figure = outputs.nth(4).locator(".js-plotly-plot").first
            figure.wait_for(state="visible", timeout=60_000)
            assert figure.locator("svg.main-svg").count() >= 1
            assert figure.locator(".slider-container, g.slider-container").count() == 1
            figure.screenshot(path=str(run_dir / "03_plotly_slices.png"))

            # 3) the threshold slider recomputes the lesion table
            explorer = page.locator(".sapkit-lesion-explorer")
            explorer.scroll_into_view_if_needed()
            explorer.locator(".js-plotly-plot svg.main-svg").first.wait_for(timeout=60_000)
            table = explorer.locator(".sapkit-lesion-table")
            before = table.inner_text()
            assert "2 lesions" in explorer.inner_text(), explorer.inner_text()
            explorer.screenshot(path=str(run_dir / "04_explorer_t050.png"))
            handle = explorer.locator(".widget-slider .noUi-handle").first
            handle.focus()
            start = time.perf_counter()
            for _ in range(4):  # 0.50 → 0.30 in steps of 0.05
                page.keyboard.press("ArrowLeft")
            page.wait_for_function("(old) => { const t = document.querySelector('.sapkit-lesion-explorer "
                                   ".sapkit-lesion-table'); return t && t.innerText !== old; }", arg=before,
                                   timeout=30_000)
            page.wait_for_function("() => /3 lesions/.test(document.querySelector('.sapkit-lesion-explorer')"
                                   ".innerText)", timeout=30_000)
            elapsed = time.perf_counter() - start
            print(f"slider → table update in the browser: {elapsed:.2f} s")
            assert "0.30" in explorer.locator(".widget-readout").first.inner_text()
            after = table.inner_text()
            assert after != before and len(after.strip().splitlines()) == len(before.strip().splitlines()) + 1
            page.wait_for_timeout(500)
            explorer.screenshot(path=str(run_dir / "05_explorer_t030.png"))
            page.screenshot(path=str(run_dir / "06_final.png"))
        finally:
            (run_dir / "console.log").write_text("\n".join(console_log))
            (run_dir / "chromium_flags.txt").write_text(" ".join(CHROMIUM_FLAGS + flags))
            context.close()
    assert not errors, f"errors in the page (see {run_dir}):\n" + "\n".join(errors)


def _lesion_count(page) -> int:
    text = page.locator(".sapkit-lesion-explorer").inner_text()
    match = re.search(r"(\d+)\s+lesions,", text)
    assert match, text
    return int(match.group(1))


def _lesion_count_at(page, threshold: str) -> int:
    """The explorer's lesion count once its summary reads 'at threshold <threshold>'."""
    page.wait_for_function("(t) => (document.querySelector('.sapkit-lesion-explorer')?.innerText || '')"
                           ".includes('at threshold ' + t)", arg=threshold, timeout=60_000)
    return _lesion_count(page)


def _colour_pixels(page, png: bytes, rgb: tuple[int, int, int], tol: int = 40) -> int:
    """Pixels of a screenshot within ``tol`` of ``rgb`` on every channel, counted by the browser."""
    return page.evaluate("""async ([b64, rgb, tol]) => {
        const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
        const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4)
            if (Math.abs(d[i] - rgb[0]) <= tol && Math.abs(d[i + 1] - rgb[1]) <= tol && Math.abs(d[i + 2] - rgb[2]) <= tol) n++;
        return n;
    }""", [base64.b64encode(png).decode(), list(rgb), tol])


def test_notebook_05_in_chromium(lab, run_dir, checkout, smoke_series):
    """Acceptance 1 of issue 25: after ``sapkit reproduce --profile smoke --run-dir runs/demo``, notebook 05
    opened from ``jupyter lab notebooks/`` with its default parameters runs to the end on that run; the
    explorer lists every test scan; a false positive chosen in it opens in the 3D viewer in the three
    outcome colours. The run is the session's smoke series (tests/smoke_runs.py: the same
    ``sapkit reproduce --profile smoke``), linked as the checkout's ``runs/demo``; screenshots in
    ``<run_dir>/notebook_05``."""
    import pandas as pd
    from playwright.sync_api import sync_playwright

    from sapkit.plotting.colors import OUTCOME_COLORS

    base, token = lab
    (checkout / "runs" / "demo").symlink_to(smoke_series, target_is_directory=True)
    notebook = checkout / "notebooks" / NOTEBOOK_05
    n_cells = sum(c["cell_type"] == "code" for c in json.loads(notebook.read_text())["cells"])
    shots = run_dir / "notebook_05"
    shots.mkdir(exist_ok=True)
    print(f"\nnotebook 05 screenshots: {shots}")
    errors: list[str] = []
    timings: dict[str, float] = {}
    with sync_playwright() as p:
        context = _launch(p, run_dir / "profile05", [])
        page = context.new_page()
        if not page.evaluate("() => !!document.createElement('canvas').getContext('webgl2')"):
            context.close()
            context = _launch(p, run_dir / "profile05s", SWIFTSHADER_FLAGS)
            page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        try:
            start = time.perf_counter()
            _open_notebook(page, base, token, notebook.name)
            _run_all_cells(page, n_cells, 400_000, shots / "01_after_run_all.png")
            timings["open + run all"] = time.perf_counter() - start
            assert not page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] "
                                    ":text('Traceback')").count()
            # default parameters: "auto" found the checkout's runs/demo
            chosen = page.locator(".jp-CodeCell .jp-OutputArea", has_text="run folder:").first.inner_text()
            assert str(checkout / "runs" / "demo") in chosen, chosen

            # 1) the 3D viewer (live JupyterLab: ipyniivue) drew the scan with its overlays
            viewer = page.locator(".jp-CodeCell .jp-OutputArea", has_text="viewer: ipyniivue").first
            canvas = viewer.locator("canvas").first
            canvas.wait_for(state="visible", timeout=60_000)
            canvas.scroll_into_view_if_needed()
            page.wait_for_timeout(3000)
            shot = viewer.screenshot(path=str(shots / "02_viewer.png"))
            assert _bright_fraction(page, shot) > 0.02, "the viewer canvas stayed black"

            # 2) the explorer lists every test scan; its image panel holds the projection and a title
            start = time.perf_counter()
            explorer = page.locator(".sapkit-lesion-explorer")
            explorer.scroll_into_view_if_needed()
            explorer.locator(".js-plotly-plot g.hm image").first.wait_for(state="attached", timeout=60_000)
            assert (explorer.locator(".js-plotly-plot .gtitle").first.text_content() or "").strip()
            test_scans = set(pd.read_csv(smoke_series / "eval" / "patients.csv")["scan_id"].astype(str))
            listed = [t.replace("\xa0", " ") for t in explorer.locator(".sapkit-case-picker select option").all_inner_texts()]
            assert len(listed) == len(test_scans) and {t.split(" · ")[0] for t in listed} == test_scans, listed
            assert f"{len(test_scans)} test scans" in explorer.inner_text()
            explorer.screenshot(path=str(shots / "03_explorer_tuned.png"))

            # 3) moving the slider changes the lesion count (down to 0.05, else up to 0.95); the summary
            # names the threshold it was computed at, so each end is read once the kernel has answered
            before = _lesion_count(page)
            handle = explorer.locator(".widget-slider .noUi-handle").first
            changed = False
            for key, end in (("ArrowLeft", "0.05"), ("ArrowRight", "0.95")):
                handle.focus()
                for _ in range(19):
                    page.keyboard.press(key)
                if _lesion_count_at(page, end) != before:
                    changed = True
                    break
            explorer.screenshot(path=str(shots / "04_explorer_moved.png"))
            assert changed, f"the lesion count stayed {before} at both ends of the slider"

            # 4) a false positive chosen in the explorer opens in the 3D viewer, in the three outcome colours
            picker = explorer.locator(".sapkit-gallery-picker select")
            fp = next(t for t in picker.locator("option").all_inner_texts() if t.replace("\xa0", " ").startswith("false positive 1 "))
            picker.select_option(label=fp)   # the gallery's first false positive, at the tuned threshold
            page.wait_for_function("() => /false.positive/.test(document.querySelector("
                                   "'.sapkit-lesion-explorer .sapkit-lesion-picker select')?.selectedOptions[0]?.text || '')",
                                   timeout=60_000)
            panel = explorer.locator(".sapkit-explorer-viewer")
            viewer_canvas = panel.locator("canvas").first
            viewer_canvas.wait_for(state="visible", timeout=60_000)
            viewer_canvas.scroll_into_view_if_needed()
            page.wait_for_timeout(3000)
            legend = panel.locator(".sapkit-legend").inner_text()
            assert all(name in legend for name in ("true positive", "false positive", "missed lesion")), legend
            shot = panel.screenshot(path=str(shots / "05_false_positive_in_viewer.png"))
            orange = tuple(int(OUTCOME_COLORS["false_positive"][i:i + 2], 16) for i in (1, 3, 5))
            assert _colour_pixels(page, viewer_canvas.screenshot(), orange) > 0, "no false positive drawn in orange"
            assert "false positive" in explorer.inner_text()
            page.screenshot(path=str(shots / "06_final.png"), full_page=True)
            timings["explorer, slider, false positive in the viewer"] = time.perf_counter() - start
        finally:
            context.close()
    print("notebook 05 in Chromium: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    assert not errors, f"errors in the page (see {shots}):\n" + "\n".join(errors)
