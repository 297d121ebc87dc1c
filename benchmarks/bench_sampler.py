"""Data pipeline: in-memory instance-balanced sampler vs reading pre-cut NIfTI patch files.

The authors cut every positive box and every negative window into NIfTI files once, then read
them back every epoch. Their layout (IB-sampling's dataset preparation, jwutsetro/IB-sampling):
one gzip-compressed ``.nii.gz`` per modality (T1, b1000) and a float32 ``.nii.gz`` label per
box. That is the named peer. The same files written uncompressed (``.nii``) are measured too, as
the best case for any file-based reader. sapkit keeps the preprocessed cases in memory and serves
crops as views. Both sides produce the same thing per sample: a contiguous (C, *roi) float32
image crop and its (*roi) label crop, for the same boxes (sapkit's epoch plan), over several epochs.

Usage::

    python benchmarks/bench_sampler.py            # demo ROI 64 and paper ROI 96, < 5 min
    python benchmarks/bench_sampler.py --quick    # smaller

Prints the environment, patches/s of each reader and their ratio (target: ≥ 10×).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sapkit.training.lesion_sampler import InstanceBalancedSampler  # noqa: E402


def _cases(n_cases: int, shape: tuple[int, int, int], n_lesions: int, seed: int) -> list[SimpleNamespace]:
    """Body-in-air cases with ``n_lesions`` small spherical lesions each (radius 1.5-4 voxels)."""
    rng = np.random.default_rng(seed)
    cases = []
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    for k in range(n_cases):
        # WB-MRI-like: air (0) around an elliptic-cylinder body of smooth tissue plus noise
        x, y = grid[0], grid[1]
        body = ((x - shape[0] / 2) / (0.4 * shape[0])) ** 2 + ((y - shape[1] / 2) / (0.35 * shape[1])) ** 2 <= 1
        image = np.zeros((2, *shape), np.float32)
        for c in range(2):
            tissue = 0.4 + 0.3 * np.sin(grid[2] / (7.0 + 3 * c)) + rng.normal(0, 0.03, shape).astype(np.float32)
            image[c] = np.where(body, np.clip(tissue, 0, 1), 0.0)
        lesion = np.zeros(shape, np.uint8)
        for _ in range(n_lesions):
            # lesions in the upper 60 % (trunk), so the legs leave lesion-free windows
            centre = [int(rng.integers(4, n - 4)) for n in shape[:2]] + [int(rng.integers(shape[2] * 2 // 5, shape[2] - 4))]
            radius = float(rng.uniform(1.5, 4.0))
            dist = sum((g - c) ** 2 for g, c in zip(grid, centre))
            lesion[dist <= radius ** 2] = 1
        cases.append(SimpleNamespace(scan_id=f"p{k}", image=image, lesion=lesion))
    return cases


def _precut(sampler: InstanceBalancedSampler, folder: Path, suffix: str) -> dict[tuple, tuple[list[Path], Path]]:
    """Write every box (positives and all negative windows) in the authors' layout: one float32
    NIfTI per modality and a float32 label NIfTI."""
    files = {}
    for j, box in enumerate(sampler.positives + sampler.negatives):
        sl = box.slices()
        image = sampler._images[box.case_index]
        mods = []
        for c, name in enumerate(("t1", "b1000")[:image.shape[0]]):
            path = folder / f"box{j:05d}_{name}{suffix}"
            nib.save(nib.Nifti1Image(np.ascontiguousarray(image[(c, *sl)], dtype=np.float32), np.eye(4)), str(path))
            mods.append(path)
        lab_path = folder / f"box{j:05d}_label{suffix}"
        label = sampler._labels[box.case_index][sl].astype(np.float32)
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(lab_path))
        files[(box.case_index, box.start, box.stop)] = (mods, lab_path)
    return files


def _run_in_memory(sampler: InstanceBalancedSampler, epochs: range) -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    for epoch in epochs:
        for image, label in sampler.epoch_samples(epoch):
            np.ascontiguousarray(image), np.ascontiguousarray(label)
            n += 1
    return n, time.perf_counter() - t0


def _run_precut(sampler: InstanceBalancedSampler, files: dict, epochs: range) -> tuple[int, float]:
    roi = sampler.roi
    n, t0 = 0, time.perf_counter()
    for epoch in epochs:
        for i, box in enumerate(sampler.epoch_plan(epoch)):
            mod_paths, lab_path = files[(box.case_index, box.start, box.stop)]
            image = np.stack([np.asarray(nib.load(str(p)).dataobj, dtype=np.float32) for p in mod_paths])
            label = np.asarray(nib.load(str(lab_path)).dataobj, dtype=np.float32) > 0.5
            rng = np.random.default_rng([sampler.seed, epoch, sampler.rank, i])
            start = [int(rng.integers(0, s - r + 1)) for s, r in zip(label.shape, roi)]
            sl = tuple(slice(a, a + r) for a, r in zip(start, roi))
            np.ascontiguousarray(image[(slice(None), *sl)]), np.ascontiguousarray(label[sl])
            n += 1
    return n, time.perf_counter() - t0


def _bench(name: str, cases: list, roi: tuple[int, int, int], epochs: int) -> None:
    t0 = time.perf_counter()
    sampler = InstanceBalancedSampler(cases, roi=roi, negative_ratio=1.0, seed=42)
    t_build = time.perf_counter() - t0
    shape = cases[0].image.shape[1:]
    print(f"\n## {name}: {len(cases)} cases of {shape} voxels, roi {roi}, window {sampler.window}")
    print(f"sampler build (components + negative windows): {t_build:.2f} s; "
          f"{len(sampler.positives)} positives, {len(sampler.negatives)} negative windows, {len(sampler)} samples/epoch")
    n_mem, t_mem = _run_in_memory(sampler, range(epochs))
    rate_mem = n_mem / t_mem
    print(f"in-memory IB sampler      : {rate_mem:10.1f} patches/s ({n_mem} patches in {t_mem:.2f} s)")
    for suffix in (".nii.gz", ".nii"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            files = _precut(sampler, Path(tmp), suffix)
            t_cut = time.perf_counter() - t0
            n_cut, t_read = _run_precut(sampler, files, range(epochs))
        rate_cut = n_cut / t_read
        print(f"pre-cut {suffix:<7} files     : {rate_cut:10.1f} patches/s ({n_cut} patches in {t_read:.2f} s; "
              f"cutting {len(files)} boxes took {t_cut:.1f} s once)")
        role = "the authors' layout, target >= 10x" if suffix == ".nii.gz" else "uncompressed best case, for reference"
        print(f"ratio in-memory / pre-cut {suffix:<7}: {rate_mem / rate_cut:8.1f}x  ({role})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases and epochs")
    args = parser.parse_args()
    import monai
    import torch

    print("# bench_sampler — in-memory instance-balanced sampler vs pre-cut NIfTI patches")
    print(f"python {platform.python_version()}, numpy {np.__version__}, nibabel {nib.__version__}, "
          f"torch {torch.__version__}, monai {monai.__version__}")
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, os {platform.platform()}")
    n = 3 if args.quick else 6
    epochs = 2 if args.quick else 3
    _bench("demo (3 mm, roi 64)", _cases(n, (64, 48, 200), 8, seed=0), (64, 64, 64), epochs)
    _bench("paper ROI (roi 96)", _cases(2, (160, 128, 320), 12, seed=1), (96, 96, 96), 2)


if __name__ == "__main__":
    main()
