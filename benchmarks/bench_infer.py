"""Inference: body-skipping whole-body sliding windows vs full-volume MONAI inference.

Both sides use the authors' settings (uniform blending, overlap 0.5, sw_batch_size 4) and the
same network (sapkit ``unet``, channels (16, 32, 64, 128, 256), ROI 64³ — the demo profile).
Full volume = ``monai.inferers.sliding_window_inference``; body skipping =
``sapkit.infer.predict_probabilities(skip_background=True)``, which evaluates only the windows of
the same grid that intersect the body mask. The script checks the outputs agree inside the body.

Whole-body phantoms (air with faint noise around head, neck, torso with arms, and legs) are built
here from a few ellipses in mm, for a given field of view (FOV), height and voxel size.

Usage::

    python benchmarks/bench_infer.py            # window table + timed demo-size volume (< 5 min)
    python benchmarks/bench_infer.py --adult    # + the 1.5 mm geometry and timed adult-FOV volumes
                                                # (10+ minutes on a 2-core CPU)

Prints the environment, the window counts of several geometries (the network cost is
proportional to the windows evaluated, so total / evaluated is the speed-up bound), seconds per
volume for both methods and their ratio (target: ≥ 2×).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sapkit.config import ModelConfig  # noqa: E402
from sapkit.infer import body_mask, count_windows, predict_probabilities  # noqa: E402
from sapkit.models import build_model  # noqa: E402

ROI = (64, 64, 64)


def wb_phantom(fov_mm: tuple[float, float], height_mm: float, spacing_mm: float, *, body_scale: float = 1.0,
               below_crown_mm: float = -30.0, arms: bool = True, seed: int = 0) -> np.ndarray:
    """(2, X, Y, Z) float32 in [0, 1]: a body 1800 mm tall (× ``body_scale``) in air.

    The top slice lies ``below_crown_mm`` below the top of the head (negative = air above the
    head) and the volume extends ``height_mm`` down. Axis 0 = left-right, 1 = anterior-posterior,
    2 = inferior-superior.
    """
    rng = np.random.default_rng(seed)
    s = body_scale
    nx, ny, nz = (int(round(v / spacing_mm)) for v in (*fov_mm, height_mm))
    x = (np.arange(nx) - (nx - 1) / 2) * spacing_mm
    y = (np.arange(ny) - (ny - 1) / 2) * spacing_mm
    total = 1800.0 * s
    heights = total - below_crown_mm - height_mm + (np.arange(nz) + 0.5) * spacing_mm
    X, Y = np.meshgrid(x, y, indexing="ij")
    body = np.zeros((nx, ny, nz), bool)
    for k, h in enumerate(heights):
        m = np.zeros((nx, ny), bool)
        if h > total:
            pass
        elif h > total - 230 * s:  # head
            r = max(0.0, 1 - ((h - (total - 115 * s)) / (115 * s)) ** 2)
            m |= (X / (78 * s)) ** 2 + (Y / (95 * s)) ** 2 <= r
        elif h > total - 330 * s:  # neck
            m |= (X / (55 * s)) ** 2 + (Y / (60 * s)) ** 2 <= 1
        elif h > total - 950 * s:  # torso, arms at the sides
            a = (185 if h > total - 450 * s else 160 if h > total - 800 * s else 175) * s
            m |= (X / a) ** 2 + (Y / (115 * s)) ** 2 <= 1
            if arms and h <= total - 360 * s:
                for side in (-1, 1):
                    m |= ((X - side * (a + 45 * s)) / (42 * s)) ** 2 + (Y / (45 * s)) ** 2 <= 1
        elif h > 0:  # legs
            t = h / (total - 950 * s)
            r = (45 + 40 * t) * s
            for side in (-1, 1):
                m |= ((X - side * (55 + 40 * t) * s) / r) ** 2 + (Y / (1.05 * r)) ** 2 <= 1
        body[:, :, k] = m
    image = np.abs(rng.normal(0.0, 0.01, (2, nx, ny, nz))).astype(np.float32)  # faint Rician-like air noise
    zz = np.arange(nz, dtype=np.float32)[None, None, :]
    tissue = [0.45 + 0.25 * np.sin(zz / 9.0) + 0.05 * np.cos(X[..., None] / 40.0),
              0.25 + 0.15 * np.cos(zz / 13.0) + 0.05 * np.sin(Y[..., None] / 30.0)]
    for c in range(2):
        noisy = tissue[c] + rng.normal(0.0, 0.03, body.shape).astype(np.float32)
        image[c] = np.where(body, np.clip(noisy, 0.0, 1.0), image[c])
    return image


GEOMETRIES = {
    # name: (fov_mm, height_mm, spacing_mm, roi, body_scale, below_crown_mm)
    "demo 64x48x200 (3 mm, small body, head to feet)": ((192, 144), 600, 3.0, 64, 0.32, -15),
    "adult neck-to-knee, FOV 500x400 mm, 3 mm": ((500, 400), 1050, 3.0, 64, 1.0, 200),
    "adult head-to-feet, FOV 500x400 mm, 3 mm": ((500, 400), 1860, 3.0, 64, 1.0, -30),
    "adult head-to-feet, FOV 500x400 mm, 1.5 mm, roi 96 (paper)": ((500, 400), 1860, 1.5, 96, 1.0, -30),
    "small body (x0.55) in an adult FOV 500x400 mm, 3 mm": ((500, 400), 1020, 3.0, 64, 0.55, -30),
}


def _phantom(geometry: tuple) -> np.ndarray:
    fov, height, spacing, _, scale, below = geometry
    return wb_phantom(fov, height, spacing, body_scale=scale, below_crown_mm=below)


def _time(model: torch.nn.Module, image: np.ndarray, body: np.ndarray, *, skip: bool,
          crop: bool = False) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    prob = predict_probabilities(model, image, roi=ROI, overlap=0.5, blend="constant", sw_batch_size=4,
                                 skip_background=skip, crop_to_body=crop, body=body if skip else None, device="cpu")
    return time.perf_counter() - t0, prob


def _timed(name: str, model: torch.nn.Module, geometry: tuple) -> None:
    image = _phantom(geometry)
    t0 = time.perf_counter()
    body = body_mask(image)
    t_mask = time.perf_counter() - t0
    windows = count_windows(body, roi=ROI, overlap=0.5)
    cropped = count_windows(body, roi=ROI, overlap=0.5, crop_to_body=True)
    t_full, full = _time(model, image, body, skip=False)
    t_skip, skip = _time(model, image, body, skip=True)
    t_skip += t_mask
    diff = float(np.abs(full - skip)[:, body].max())
    print(f"\n## {name}: volume {image.shape[1:]} voxels, body {body.mean():.0%} of voxels")
    print(f"windows: {windows.n_total} full grid, {windows.n_evaluated} intersect the body, "
          f"{cropped.n_evaluated} on the body-box grid")
    print(f"full-volume MONAI  : {t_full:8.2f} s per volume")
    print(f"body skipping      : {t_skip:8.2f} s per volume (incl. {t_mask:.2f} s body mask)")
    print(f"ratio full / skip  : {t_full / t_skip:8.2f}x  (target >= 2x)")
    print(f"max |difference| inside the body, skip vs full: {diff:.2e} (must be <= 1e-5)")
    if cropped.n_evaluated < windows.n_evaluated:
        t_crop, crop = _time(model, image, body, skip=True, crop=True)
        t_crop += t_mask
        diff_crop = float(np.abs(full - crop)[:, body].max())
        print(f"crop to body box   : {t_crop:8.2f} s per volume, ratio full / crop {t_full / t_crop:.2f}x "
              f"(different grid: max |difference| inside the body {diff_crop:.2e}, not identical)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adult", action="store_true", help="also time the adult neck-to-knee volume (minutes on CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    import monai

    if args.threads:
        torch.set_num_threads(args.threads)
    print("# bench_infer — body-skipping vs full-volume sliding-window inference")
    print(f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"monai {monai.__version__}, numpy {np.__version__}")
    print(f"machine: {platform.machine()}, os {platform.platform()}, device cpu")
    print("settings: unet channels (16, 32, 64, 128, 256), roi 64^3 (96^3 where stated), overlap 0.5, "
          "constant blending, sw_batch_size 4")

    print("\n## Window counts (network cost ∝ windows evaluated; total / evaluated bounds the speed-up)")
    print("skip = windows of the full grid that intersect the body (output identical inside the body);")
    print("crop = windows of the grid over the body's bounding box (crop_to_body=True, not identical)")
    print(f"{'geometry':<62} {'volume':>18} {'body':>5} {'total':>6} {'skip':>6} {'bound':>6} {'crop':>6} {'bound':>6}")
    for name, geometry in GEOMETRIES.items():
        if geometry[2] < 3.0 and not args.adult:
            print(f"{name:<62} (1.5 mm: 110 M voxels, run with --adult)")
            continue
        image = _phantom(geometry)
        body = body_mask(image)
        wc = count_windows(body, roi=(geometry[3],) * 3, overlap=0.5)
        cc = count_windows(body, roi=(geometry[3],) * 3, overlap=0.5, crop_to_body=True)
        print(f"{name:<62} {str(body.shape):>18} {body.mean():5.0%} {wc.n_total:6d} {wc.n_evaluated:6d} "
              f"{wc.n_total / wc.n_evaluated:5.2f}x {cc.n_evaluated:6d} {cc.n_total / cc.n_evaluated:5.2f}x")
        del image, body

    model = build_model(ModelConfig(backbone="unet", channels=(16, 32, 64, 128, 256)), 2, seed=0).eval()
    names = list(GEOMETRIES)
    _timed(names[0], model, GEOMETRIES[names[0]])
    if args.adult:
        _timed(names[1], model, GEOMETRIES[names[1]])
        _timed(names[4], model, GEOMETRIES[names[4]])


if __name__ == "__main__":
    main()
