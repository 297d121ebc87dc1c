"""Inference: body-skipping whole-body sliding windows vs full-volume MONAI inference.

Both sides use the same network weights and the same window grid. The peer is the authors'
full-volume inference: ``monai.inferers.sliding_window_inference`` (uniform blending) + softmax
with the network in PyTorch's default (contiguous) layout. sapkit runs the same grid through
``sapkit.inference.sliding_window.predict_probabilities``: ``skip_background=False`` (every window, sapkit's CPU
layout ``channels_last_3d``) and ``skip_background=True`` (only the windows intersecting the body
mask; MONAI's own call when every window does). Three ratios are printed: the layout alone
(sapkit full / authors), body skipping alone (sapkit full / sapkit skip, same layout: bounded by
the window counts) and sapkit's default against the authors' (both). The script checks that the
outputs agree inside the body.

Settings: **demo** = the demo profile (ROI 32³, overlap 0.25, sw_batch_size 8, 3 mm); **paper** =
ROI 96³, overlap 0.5, uniform blending, sw_batch_size 4 at 2 mm or 1.5 mm. The network is the demo
profile's unet (``model.channels`` of the demo profile) in both, on the CPU (the paper's SwinUNETR only changes the cost
per window, which scales both sides alike).

Volumes (``image`` (2, X, Y, Z), RAS, scaled to [0, 1] like ``sapkit.data.cases`` does):

* ``sapkit.data.phantom`` scans: the demo cohort's own grid, and an adult (scale 1) rendered on a
  realistic whole-body acquisition grid — 500 mm left-right with the arms down at the sides,
  400 mm (or 350 mm) anterior-posterior with air in front and behind, skull base to below the
  knees (the phantom's coverage, 1140 mm);
* head-to-feet adults (1860 mm, 500 × 400 mm) drawn here from ellipses (head, neck, torso,
  arms, legs), since the phantom stops below the knees.

The phantom's DWI b1000 channel carries a noise floor in air that scales to 0.15–0.4 after the
1–99 % percentile scaling, so a body mask over both channels covers the whole field of view
there; the library's default mask (``body_mask(image)``, T1 only) outlines the body. Both masks
are reported.

Usage::

    python benchmarks/bench_infer.py                  # window table (3 mm) + timed 3 mm cases (~5 min)
    python benchmarks/bench_infer.py --paper          # + window counts of the 2 mm / 1.5 mm grids (+3 min, ~6 GB RAM)
    python benchmarks/bench_infer.py --paper --time-paper   # + timed 2 mm paper-settings volume (~15 min more on 2 cores)

Prints the environment, window counts (network cost ∝ windows evaluated, so total / evaluated
bounds the speed-up of an identical result), seconds per volume for full-volume MONAI, body
skipping (body mask included) and crop-to-body, their ratios (target ≥ 2×) and the largest
difference inside the body (must be ≤ 1e-5).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sapkit.config import ModelConfig, load_config  # noqa: E402
from sapkit.inference.sliding_window import body_mask, count_windows, predict_probabilities  # noqa: E402
from sapkit.networks.factory import build_model  # noqa: E402
from sapkit.data.intensity import scale_intensity  # noqa: E402

DEMO = {"roi": 32, "overlap": 0.25, "sw_batch_size": 8}
PAPER = {"roi": 96, "overlap": 0.5, "sw_batch_size": 4}


def phantom_scan(*, adult: bool, spacing_mm: float = 3.0, fov_mm: tuple[float, float] | None = None) -> np.ndarray:
    """A ``sapkit.data.phantom`` patient scan, scaled: the demo cohort grid, or an adult on a chosen FOV."""
    from sapkit.data.phantom import Grid, make_grid, make_scan, make_sites, make_subject
    from sapkit.data.phantom._anatomy import Z_BOTTOM, Z_TOP

    synth = load_config("demo").synth
    if adult:
        synth = dataclasses.replace(synth, height_mm=Z_TOP - Z_BOTTOM, spacing_mm=spacing_mm)
    grid = make_grid(synth)
    if fov_mm is not None:
        nx, ny = (int(round(f / spacing_mm)) for f in fov_mm)
        grid = Grid((nx, ny, grid.shape[2]), spacing_mm, (-(nx - 1) / 2 * spacing_mm, -(ny - 1) / 2 * spacing_mm,
                                                         grid.origin_mm[2]))
    subject = make_subject(synth, cohort="patient", index=0)
    scan = make_scan(subject, grid, scan_index=0, site=make_sites(3, seed=synth.seed)[0], config=synth)
    return scale_intensity(scan.image)


def ellipse_body(fov_mm: tuple[float, float], height_mm: float, spacing_mm: float, *, seed: int = 0) -> np.ndarray:
    """(2, X, Y, Z) float32 in [0, 1]: an adult 1800 mm tall, head to feet, in air with faint noise.

    Axis 0 = left-right (torso 320–370 mm wide plus an arm of 84 mm at each side), 1 =
    anterior-posterior (torso 230 mm deep), 2 = inferior-superior; the top slice is 30 mm above
    the head.
    """
    rng = np.random.default_rng(seed)
    nx, ny, nz = (int(round(v / spacing_mm)) for v in (*fov_mm, height_mm))
    x = ((np.arange(nx) - (nx - 1) / 2) * spacing_mm)[:, None]
    y = ((np.arange(ny) - (ny - 1) / 2) * spacing_mm)[None, :]
    total = 1800.0
    heights = total + 30.0 - height_mm + (np.arange(nz) + 0.5) * spacing_mm
    image = np.abs(rng.standard_normal((2, nx, ny, nz), dtype=np.float32)) * np.float32(0.01)
    for k, h in enumerate(heights):
        m = np.zeros((nx, ny), bool)
        if h > total:
            pass
        elif h > total - 230:  # head
            r = max(0.0, 1 - ((h - (total - 115)) / 115) ** 2)
            m |= (x / 78) ** 2 + (y / 95) ** 2 <= r
        elif h > total - 330:  # neck
            m |= (x / 55) ** 2 + (y / 60) ** 2 <= 1
        elif h > total - 950:  # torso, arms at the sides
            a = 185 if h > total - 450 else 160 if h > total - 800 else 175
            m |= (x / a) ** 2 + (y / 115) ** 2 <= 1
            if h <= total - 360:
                for side in (-1, 1):
                    m |= ((x - side * (a + 45)) / 42) ** 2 + (y / 45) ** 2 <= 1
        elif h > 0:  # legs
            t = h / (total - 950)
            r = 45 + 40 * t
            for side in (-1, 1):
                m |= ((x - side * (55 + 40 * t)) / r) ** 2 + (y / (1.05 * r)) ** 2 <= 1
        if m.any():
            tissue = (0.45 + 0.25 * np.sin(k / 9.0), 0.25 + 0.15 * np.cos(k / 13.0))
            for c in range(2):
                image[c, :, :, k][m] = np.clip(tissue[c] + 0.03 * rng.standard_normal(int(m.sum()), dtype=np.float32),
                                               0.0, 1.0)
    return image


# name: (volume factory, settings, timed in default mode, needs --paper)
CASES = {
    "demo cohort scan (phantom, 3 mm, demo settings)":
        (lambda: phantom_scan(adult=False), DEMO, True, False),
    "adult skull base-knees, FOV 500x400 mm (phantom, 3 mm, demo settings)":
        (lambda: phantom_scan(adult=True, spacing_mm=3.0, fov_mm=(500, 400)), DEMO, True, False),
    "adult head-feet, FOV 500x400 mm (ellipses, 3 mm, demo settings)":
        (lambda: ellipse_body((500, 400), 1860, 3.0), DEMO, True, False),
    "adult skull base-knees, FOV 500x400 mm (phantom, 2 mm, paper settings)":
        (lambda: phantom_scan(adult=True, spacing_mm=2.0, fov_mm=(500, 400)), PAPER, True, True),
    "adult skull base-knees, FOV 500x350 mm (phantom, 2 mm, paper settings)":
        (lambda: phantom_scan(adult=True, spacing_mm=2.0, fov_mm=(500, 350)), PAPER, False, True),
    "adult skull base-knees, FOV 500x400 mm (phantom, 1.5 mm, paper settings)":
        (lambda: phantom_scan(adult=True, spacing_mm=1.5, fov_mm=(500, 400)), PAPER, False, True),
    "adult head-feet, FOV 500x400 mm (ellipses, 2 mm, paper settings)":
        (lambda: ellipse_body((500, 400), 1860, 2.0), PAPER, False, True),
    "adult head-feet, FOV 500x400 mm (ellipses, 1.5 mm, paper settings)":
        (lambda: ellipse_body((500, 400), 1860, 1.5), PAPER, False, True),
}


def _seconds(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _masks(image: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    return {"both channels": _seconds(lambda: body_mask(image, channels=(0, 1))),
            "T1 only": _seconds(lambda: body_mask(image))}  # T1 is the library's default


def _window_row(name: str, image: np.ndarray, settings: dict, masks: dict) -> None:
    roi, overlap = (settings["roi"],) * 3, settings["overlap"]
    counts = {k: count_windows(m, roi=roi, overlap=overlap) for k, (_, m) in masks.items()}
    crop = count_windows(masks["T1 only"][1], roi=roi, overlap=overlap, crop_to_body=True)
    both, t1 = counts["both channels"], counts["T1 only"]
    print(f"{name:<74} {str(image.shape[1:]):>16} {masks['T1 only'][1].mean():5.0%} {both.n_total:6d} "
          f"{both.n_evaluated:6d} {t1.n_evaluated:6d} {t1.n_total / max(t1.n_evaluated, 1):5.2f}x "
          f"{crop.n_evaluated:6d} {crop.n_total / max(crop.n_evaluated, 1):5.2f}x")


def _authors_full(model: torch.nn.Module, image: np.ndarray, settings: dict) -> np.ndarray:
    """The authors' inference: MONAI sliding windows over the whole volume, uniform blending, softmax."""
    from monai.inferers import sliding_window_inference

    with torch.no_grad():
        logits = sliding_window_inference(torch.from_numpy(image)[None], (settings["roi"],) * 3,
                                          settings["sw_batch_size"], model, overlap=settings["overlap"],
                                          mode="constant")
    return torch.softmax(torch.as_tensor(logits)[0].float(), dim=0).numpy()


def _timed(name: str, model: torch.nn.Module, image: np.ndarray, settings: dict, masks: dict) -> None:
    import copy

    kw = dict(roi=(settings["roi"],) * 3, overlap=settings["overlap"], blend="constant",
              sw_batch_size=settings["sw_batch_size"], device="cpu")
    authors = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    with torch.no_grad():  # warm-up: the first pass at a new window size sets up the CPU kernels
        for net, fmt in ((authors, torch.contiguous_format), (model, torch.channels_last_3d)):
            net(torch.zeros((settings["sw_batch_size"], 2, *kw["roi"])).to(memory_format=fmt))
    t_peer, peer = _seconds(lambda: _authors_full(authors, image, settings))
    t_full, full = _seconds(lambda: predict_probabilities(model, image, skip_background=False, **kw))
    print(f"\n## {name}: volume {image.shape[1:]}, roi {settings['roi']}, overlap {settings['overlap']}")
    print(f"authors: full-volume MONAI, default layout : {t_peer:8.2f} s")
    print(f"sapkit: every window, CPU layout           : {t_full:8.2f} s  -> layout alone {t_peer / t_full:5.2f}x; "
          f"max |diff| {float(np.abs(peer - full).max()):.1e}")
    for label, (t_mask, body) in masks.items():
        wc = count_windows(body, roi=kw["roi"], overlap=kw["overlap"])
        if wc.n_evaluated == wc.n_total:
            print(f"body skipping, {label:<14}: nothing to skip ({wc.n_total}/{wc.n_total} windows): MONAI's own call "
                  f"(tests/inference/test_sliding_window.py::test_nothing_to_skip_runs_monai_itself) + body mask {t_mask:.2f} s "
                  f"-> skipping alone {t_full / (t_full + t_mask):5.2f}x, sapkit default vs authors "
                  f"{t_peer / (t_full + t_mask):5.2f}x")
            continue
        t_skip, skip = _seconds(lambda: predict_probabilities(model, image, body=body, **kw))
        t_skip += t_mask
        diff = float(np.abs(full - skip)[:, body].max()) if body.any() else 0.0
        diff_peer = float(np.abs(peer - skip)[:, body].max()) if body.any() else 0.0
        print(f"body skipping, {label:<14}: {t_skip:8.2f} s  ({wc.n_evaluated}/{wc.n_total} windows, body mask "
              f"{t_mask:.2f} s) -> skipping alone {t_full / t_skip:5.2f}x (bound {wc.n_total / max(wc.n_evaluated, 1):.2f}x), "
              f"sapkit default vs authors {t_peer / t_skip:5.2f}x (target >= 2x); max |diff| inside the body "
              f"{diff:.1e} (vs authors {diff_peer:.1e})")
        del skip
    t_mask, body = masks["T1 only"]
    wc = count_windows(body, roi=kw["roi"], overlap=kw["overlap"], crop_to_body=True)
    if wc.n_evaluated < wc.n_total:
        t_crop, crop = _seconds(lambda: predict_probabilities(model, image, body=body, crop_to_body=True, **kw))
        t_crop += t_mask
        diff = float(np.abs(full - crop)[:, body].max())
        print(f"crop to body box (T1 mask)   : {t_crop:8.2f} s  ({wc.n_evaluated} windows on the body-box grid) -> "
              f"sapkit full / crop {t_full / t_crop:5.2f}x, authors / crop {t_peer / t_crop:5.2f}x (different grid, "
              f"not identical: max |diff| inside the body {diff:.1e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", action="store_true", help="also count the windows of the 2 mm / 1.5 mm grids")
    parser.add_argument("--time-paper", action="store_true", help="with --paper: also time the 2 mm volume (slow)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    import monai

    if args.threads:
        torch.set_num_threads(args.threads)
    print("# bench_infer — body-skipping vs full-volume sliding-window inference")
    print(f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"monai {monai.__version__}, numpy {np.__version__}")
    print(f"machine: {platform.machine()}, os {platform.platform()}, device cpu")
    channels = tuple(load_config("demo").model.channels)
    print(f"network: unet channels {channels}; demo settings {DEMO}; paper settings {PAPER}; constant blending")
    model = build_model(ModelConfig(backbone="unet", channels=channels), 2, seed=0).eval()

    print("\n## Window counts (network cost ∝ windows evaluated; total / evaluated bounds the speed-up)")
    print("skip = windows of the full grid intersecting the body mask (identical output inside the body), with the")
    print("a mask over both channels and the library's default T1 mask; crop = windows of the grid over the T1 body's")
    print("bounding box (crop_to_body=True: a different grid, not identical); body = T1 body share of the voxels")
    print(f"{'case':<74} {'volume':>16} {'body':>5} {'total':>6} {'both':>6} {'T1':>6} {'bound':>6} "
          f"{'crop':>6} {'bound':>6}")
    timed = []
    for name, (make, settings, time_it, paper_only) in CASES.items():
        if paper_only and not args.paper:
            print(f"{name:<74} (run with --paper)")
            continue
        image = make()
        masks = _masks(image)
        _window_row(name, image, settings, masks)
        if time_it and (args.time_paper or not paper_only):
            timed.append((name, image, settings, masks))
        else:
            del image, masks
    for name, image, settings, masks in timed:
        _timed(name, model, image, settings, masks)


if __name__ == "__main__":
    main()
