"""Benchmark: the complete lesion-wise report on a whole-body-sized case against named peers.

Builds a synthetic whole-body case (≥ 100 M voxels, 120 GT lesions with a skewed volume
distribution — median ≈ 0.5 mL, ≈ 25 % ≥ 1 mL — anisotropic spacing, a float16 probability map,
false positives) and times, best of a few repeats:

- bare cc3d labelling of both masks (26-connectivity) and scipy.ndimage.label of both;
- ``sapkit.metrics.lesion_report`` — components, matching, per-lesion Dice and NSD, tables — on
  the binary masks and on the probability map (threshold 0.5), with hit rules ``any`` and
  ``iou:0.5``;
- panoptica's default pipeline with the same rule (semantic input, connected components,
  naive IoU ≥ 0.5 matching), if installed;
- MONAI ``compute_surface_dice(use_subvoxels=True)`` per lesion over the lesion and its whole
  matched components (sapkit's default per-lesion NSD; the mean NSD of both, as a check);
- ``sapkit evaluate --gt --pred --json`` end to end in a fresh process (imports, reading both
  files, the report, the JSON), for uncompressed ``.nii`` and for ``.nii.gz``, against bare cc3d
  labelling of both in-memory masks run just before each call (interleaved pairs, median of the
  per-pair ratios; issue 15 target: ``.nii`` ≤ 2.5× cc3d) and against panoptica when installed.

It prints the environment, the times and the ratios, and the memory of the evaluation: peak
RSS of a fresh process during ``lesion_report(prob_map=...)`` minus its RSS before the call,
against the size of the uint8 GT mask + float16 probability map (issue 9 target ≤ 3×).

Targets (issue 6): report ≥ 10× faster than panoptica, and no slower than cc3d labelling of
both masks. Run: ``python benchmarks/bench_metrics.py`` (≈ 1–3 minutes on 2 cores).

panoptica pins ``connected-components-3d<4``, ``numpy<2.3``, ``pandas<3`` and ``plotly<6``, which
conflict with sapkit's pins, so it is not a project requirement; install it for this script only
with ``pip install --no-deps panoptica==2.1.7 rich typer ruamel.yaml pydantic scikit-image``
(it runs with the newer versions).
"""

from __future__ import annotations

import argparse
import json
import os
from importlib import metadata
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPE = (320, 256, 1280)  # 104.9 M voxels
SPACING = (1.3, 1.3, 1.2)  # mm
N_LESIONS = 120
N_FP = 40
SEED = 42


def make_case(seed: int = SEED):
    """GT uint8 mask, float16 probability map and binary prediction of a whole-body-sized case."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(SHAPE, np.uint8)
    prob = np.zeros(SHAPE, np.float16)
    voxel_mm3 = float(np.prod(SPACING))
    volumes_ml = np.exp(rng.normal(np.log(0.5), 1.03, N_LESIONS))  # median 0.5 mL, P(≥ 1 mL) ≈ 0.25
    margin = 40
    for k in range(N_LESIONS + N_FP):
        centre = rng.integers(margin, np.array(SHAPE) - margin)
        if k < N_LESIONS:
            r_mm = (3 * volumes_ml[k] * 1000 / (4 * np.pi)) ** (1 / 3)
        else:
            r_mm = rng.uniform(2.0, 6.0)
        radii = r_mm * rng.uniform(0.8, 1.25, 3)
        half = np.ceil(radii * 1.6 / np.array(SPACING)).astype(int) + 2
        sl = tuple(slice(int(c - h), int(c + h + 1)) for c, h in zip(centre, half))
        grid = np.ogrid[sl]
        d = sum(((g - c) * s / r) ** 2 for g, c, s, r in zip(grid, centre, SPACING, radii))
        if k < N_LESIONS:
            gt[sl] |= (d <= 1).astype(np.uint8)
            if rng.random() > 0.8:  # missed lesion
                continue
            shift = rng.normal(0, 0.25, 3)
            d = sum(((g - c - o * r / s) * s / r) ** 2 for g, c, o, s, r in zip(grid, centre, shift, SPACING, radii))
        blob = np.clip(1.3 - 0.8 * np.sqrt(d), 0, 1) * rng.uniform(0.6, 1.0)
        prob[sl] = np.maximum(prob[sl], blob.astype(np.float16))
    pred = (prob >= np.float16(0.5)).astype(np.uint8)
    return gt, prob, pred


def best_of(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size (VmHWM) of this process in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(folder: str) -> None:
    """Runs in a fresh process: load inputs, measure RSS before and the peak during the report.

    The peak is reset just before the call (``/proc/self/clear_refs``), because a process may
    inherit its parent's high-water mark.
    """
    from sapkit.metrics import lesion_report

    gt = np.load(Path(folder) / "gt.npy")
    prob = np.load(Path(folder) / "prob.npy")
    lesion_report(gt[:64, :64, :64], prob_map=prob[:64, :64, :64], threshold=0.5, spacing_mm=SPACING)  # imports, tables
    before = rss_mb()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = 1
    except OSError:
        reset = 0
    lesion_report(gt, prob_map=prob, threshold=0.5, spacing_mm=SPACING)
    print(f"{before:.1f} {peak_rss_mb():.1f} {reset}")


#: The floor any command-line evaluator pays here: a fresh interpreter that imports numpy, nibabel
#: and cc3d, reads both files as sapkit does (nibabel, memory-mapped .nii, pydicom not loaded)
#: and labels both masks, then writes one number as JSON. No matching, no scores.
FLOOR_SCRIPT = """
import json, sys
sys.modules["pydicom"] = None
import cc3d, nibabel, numpy
del sys.modules["pydicom"]
gt, pred = (numpy.asanyarray(nibabel.load(p).dataobj) for p in sys.argv[1:3])
n = sum(int(cc3d.connected_components(m, connectivity=26, return_N=True)[1]) for m in (gt, pred))
open(sys.argv[3], "w").write(json.dumps({"components": n}))
"""


def cli_section(gt: np.ndarray, pred: np.ndarray, pairs: int) -> dict[str, dict[str, list[float]]]:
    """Time ``sapkit evaluate --gt --pred --json`` in a fresh process on ``.nii`` and ``.nii.gz`` files.

    Each CLI call is paired with a bare cc3d labelling of both in-memory masks run just before
    it, so both see the same machine state (on a shared VM the speed drifts by ±30 % within a
    minute); the ratio is taken per pair. The floor script (:data:`FLOOR_SCRIPT`) runs in each
    pair too. Returns, per extension, the wall and CPU seconds (user + system) of the CLI calls,
    of their cc3d peers and the floor's wall seconds.
    """
    import cc3d
    import nibabel as nib

    def label_both() -> None:
        cc3d.connected_components(gt, connectivity=26)
        cc3d.connected_components(pred, connectivity=26)

    affine = np.diag([*SPACING, 1.0])
    # as an installed package runs: with bytecode caches (pip writes them at install; a
    # PYTHONDONTWRITEBYTECODE environment would recompile sapkit in every call), written by one
    # warm-up call that is not timed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for ext in (".nii", ".nii.gz"):
            paths = []
            for name, arr in (("gt", gt), ("pred", pred)):
                paths.append(Path(folder) / f"{name}{ext}")
                nib.save(nib.Nifti1Image(arr, affine), str(paths[-1]))
            out = Path(folder) / f"case{ext}.json"
            cmd = [sys.executable, "-c", "import sys; from sapkit.cli import main; sys.exit(main())", "evaluate",
                   "--gt", str(paths[0]), "--pred", str(paths[1]), "--json", str(out)]
            floor = [sys.executable, "-c", FLOOR_SCRIPT, str(paths[0]), str(paths[1]), str(Path(folder) / "floor.json")]
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            r = results[ext] = {"cli_wall": [], "cli_cpu": [], "cc3d_wall": [], "cc3d_cpu": [], "floor_wall": [],
                                "cc3d_warm": []}
            for _ in range(pairs):  # back to back, as fast as cc3d gets here (its most favourable reading)
                t0 = time.perf_counter()
                label_both()
                r["cc3d_warm"].append(time.perf_counter() - t0)
            for _ in range(pairs):
                t0, c0 = time.perf_counter(), time.process_time()
                label_both()
                r["cc3d_wall"].append(time.perf_counter() - t0)
                r["cc3d_cpu"].append(time.process_time() - c0)
                out.unlink(missing_ok=True)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, capture_output=True, env=env)
                r["cli_wall"].append(time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                r["cli_cpu"].append((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime))
                t0 = time.perf_counter()
                subprocess.run(floor, check=True, capture_output=True, env=env)
                r["floor_wall"].append(time.perf_counter() - t0)
            doc = json.loads(out.read_text())
            print(f"sapkit evaluate {ext}: TP {doc['tp']} FN {doc['fn']} FP {doc['fp']} "
                  f"({sum(p.stat().st_size for p in paths) / 2**20:.0f} MiB on disk)")
    return results


def _print_cli(results: dict[str, dict[str, list[float]]], panoptica_s: float | None) -> None:
    print("\n== sapkit evaluate end to end (file → JSON, fresh process) / bare cc3d labelling of both masks")
    print(f"   {len(results['.nii']['cli_wall'])} interleaved pairs per format; median of the per-pair ratios "
          "(min–max), and the medians of the times")
    for ext, r in results.items():
        wall = np.asarray(r["cli_wall"]) / np.asarray(r["cc3d_wall"])
        cpu = np.asarray(r["cli_cpu"]) / np.asarray(r["cc3d_cpu"])
        print(f"{np.median(wall):8.2f}× wall ({wall.min():.2f}–{wall.max():.2f}; {np.median(r['cli_wall']):.2f} s / "
              f"{np.median(r['cc3d_wall']):.2f} s), {np.median(cpu):.2f}× CPU time ({np.median(r['cli_cpu']):.2f} s / "
              f"{np.median(r['cc3d_cpu']):.2f} s)  {ext}" + ("  (issue 15 target ≤ 2.5× wall)" if ext == ".nii" else ""))
        best = min(r["cli_wall"]) / min(r["cc3d_wall"])
        floor = np.asarray(r["cli_wall"]) / np.asarray(r["floor_wall"])
        print(f"{best:8.2f}× best CLI / best paired cc3d ({min(r['cli_wall']):.2f} s / {min(r['cc3d_wall']):.2f} s)  {ext}")
        print(f"{min(r['cli_wall']) / min(r['cc3d_warm']):8.2f}× best CLI / best cc3d run {len(r['cc3d_warm'])} times back "
              f"to back ({min(r['cli_wall']):.2f} s / {min(r['cc3d_warm']):.2f} s)  {ext}")
        print(f"{np.median(floor):8.2f}× CLI / floor script (imports + read + cc3d of both files, fresh process; "
              f"floor median {np.median(r['floor_wall']):.2f} s, best {min(r['floor_wall']):.2f} s = "
              f"{min(r['floor_wall']) / min(r['cc3d_wall']):.2f}× best cc3d)  {ext}")
    if panoptica_s is not None:
        print(f"{panoptica_s / np.median(results['.nii']['cli_wall']):8.2f}×  panoptica (in memory) / sapkit evaluate "
              "on .nii (> 1 means the CLI is faster)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=7, help="interleaved cc3d / CLI pairs per file format")
    parser.add_argument("--skip-panoptica", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    import cc3d
    import scipy
    from scipy import ndimage

    import sapkit
    from sapkit.metrics import lesion_report

    print("== environment")
    print(f"python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} CPUs · "
          f"numpy {np.__version__} · scipy {scipy.__version__} · cc3d {metadata.version('connected-components-3d')} · "
          f"sapkit {sapkit.__version__}")
    t0 = time.perf_counter()
    gt, prob, pred = make_case()
    n_gt = int(cc3d.connected_components(gt, connectivity=26, return_N=True)[1])
    print(f"case: shape {SHAPE} ({gt.size / 1e6:.1f} M voxels), spacing {SPACING} mm, {n_gt} GT lesions, "
          f"{int(gt.sum())} GT voxels, {int(pred.sum())} predicted voxels (built in {time.perf_counter() - t0:.1f} s)")
    lesion_report(gt[:64, :64, :64], pred[:64, :64, :64], spacing_mm=SPACING)  # warm-up: imports, surfel table

    r = args.repeats
    times = {}
    times["cc3d labelling of both masks"], _ = best_of(
        lambda: (cc3d.connected_components(gt, connectivity=26), cc3d.connected_components(pred, connectivity=26)), r)
    s26 = np.ones((3, 3, 3), bool)
    times["scipy.ndimage.label of both masks"], _ = best_of(
        lambda: (ndimage.label(gt, s26), ndimage.label(pred, s26)), 1)
    times["sapkit report, masks, hit=any"], rep = best_of(lambda: lesion_report(gt, pred, spacing_mm=SPACING), r)
    times["sapkit report, prob map, hit=any"], rep_p = best_of(
        lambda: lesion_report(gt, prob_map=prob, threshold=0.5, spacing_mm=SPACING), r)
    times["sapkit report, masks, hit=iou:0.5"], rep_iou = best_of(
        lambda: lesion_report(gt, pred, spacing_mm=SPACING, hit="iou:0.5"), r)
    print(f"sapkit: {rep!r}")
    print(f"sapkit (iou:0.5): {rep_iou!r}")
    assert rep.patient == rep_p.patient, "mask and probability-map paths disagree"

    # MONAI surface-area NSD per detected lesion over the same padded boxes
    try:
        import torch
        from monai.metrics import compute_surface_dice

        g_lab = cc3d.connected_components(gt, connectivity=26)
        p_lab = cc3d.connected_components(pred, connectivity=26)
        stats = cc3d.statistics(g_lab, no_slice_conversion=True)
        both = (g_lab > 0) & (p_lab > 0)
        pairs = np.unique(np.stack([g_lab[both], p_lab[both]], 1), axis=0)
        pad = np.array([int(np.ceil(2.0 / s)) + 1 for s in SPACING])
        crops = []
        p_stats = cc3d.statistics(p_lab, no_slice_conversion=True)
        for g in np.unique(pairs[:, 0]):
            ps = pairs[pairs[:, 0] == g, 1]
            boxes = np.array([stats["bounding_boxes"][g], *(p_stats["bounding_boxes"][p] for p in ps)])
            lo = np.maximum(boxes[:, 0::2].min(axis=0) - pad, 0)
            hi = np.minimum(boxes[:, 1::2].max(axis=0) + pad + 1, SHAPE)
            sl = tuple(slice(int(a), int(c)) for a, c in zip(lo, hi))
            crops.append((g_lab[sl] == g, np.isin(p_lab[sl], ps)))

        def monai_all():
            out = []
            for gb, pb in crops:
                oh = lambda m: torch.as_tensor(np.stack([~m, m])[None].astype(np.float32))  # noqa: E731
                out.append(compute_surface_dice(oh(pb), oh(gb), class_thresholds=[2.0], spacing=SPACING,
                                                use_subvoxels=True).item())
            return out

        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times[f"MONAI NSD (subvoxels) over {len(crops)} lesion crops"], nsd_monai = best_of(monai_all, 1)
        ours = rep.lesions[rep.lesions.detected].sort_values("n_voxels")["nsd"].to_numpy()
        theirs = np.sort(np.asarray(nsd_monai))
        print(f"NSD check vs MONAI: {len(ours)} vs {len(theirs)} detected lesions; "
              f"mean NSD sapkit {ours.mean():.4f}, MONAI {theirs.mean():.4f}")
    except ImportError as exc:  # pragma: no cover
        print(f"MONAI not available: {exc}")

    if not args.skip_panoptica:
        try:
            from panoptica import (
                ConnectedComponentsInstanceApproximator,
                InputType,
                NaiveThresholdMatching,
                Panoptica_Evaluator,
            )

            ev = Panoptica_Evaluator(expected_input=InputType.SEMANTIC,
                                     instance_approximator=ConnectedComponentsInstanceApproximator(),
                                     instance_matcher=NaiveThresholdMatching(matching_threshold=0.5), verbose=False)
            times["panoptica default pipeline, iou:0.5"], res = best_of(lambda: ev.evaluate(pred, gt, verbose=False), 1)
            res = next(iter(res.values())) if isinstance(res, dict) else res
            tp, fp, fn = (getattr(res, k, None) for k in ("tp", "fp", "fn"))
            print(f"panoptica: TP {tp} FP {fp} FN {fn}  (sapkit iou:0.5: TP {rep_iou.patient.tp} "
                  f"FP {rep_iou.patient.fp} FN {rep_iou.patient.fn})")
        except ImportError:
            print("panoptica not installed: pip install --no-deps panoptica==2.1.7 (see module docstring)")

    cli = cli_section(gt, pred, args.pairs)

    print("\n== times (best of repeats, seconds)")
    for name, t in times.items():
        print(f"{t:8.3f}  {name}")
    ours = times["sapkit report, masks, hit=any"]
    print("\n== ratios (peer time / sapkit report time; > 1 means sapkit is faster)")
    for name, t in times.items():
        if not name.startswith("sapkit"):
            print(f"{t / ours:8.2f}×  {name}")
    pan = times.get("panoptica default pipeline, iou:0.5")
    if pan is not None:
        print(f"target ≥ 10× vs panoptica (same rule iou:0.5): {pan / times['sapkit report, masks, hit=iou:0.5']:.1f}×")
    print(f"target ≥ 1× vs cc3d labelling: {times['cc3d labelling of both masks'] / ours:.2f}×")
    _print_cli(cli, pan)

    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "gt.npy", gt)
        np.save(Path(folder) / "prob.npy", prob)
        inputs_mb = (gt.nbytes + prob.nbytes) / 2**20
        del gt, prob, pred
        out = subprocess.run([sys.executable, __file__, "--memory-child", folder], capture_output=True, text=True,
                             check=True).stdout.split()
        before, peak, reset = (float(v) for v in out[-3:])
        if not reset:
            print("(could not reset the peak RSS counter: the peak may include the parent's)")
        extra = max(peak - before, 0.0)
        print("\n== memory (fresh process, lesion_report on the float16 probability map)")
        print(f"inputs (uint8 GT + float16 prob): {inputs_mb:.0f} MiB; RSS before {before:.0f} MiB; peak {peak:.0f} MiB; "
              f"evaluation extra {extra:.0f} MiB = {extra / inputs_mb:.2f}× the inputs "
              f"(peak/inputs {peak / inputs_mb:.2f}×; issue 9 target ≤ 3×)")


if __name__ == "__main__":
    main()
