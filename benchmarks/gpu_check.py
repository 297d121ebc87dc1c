"""GPU check of the paper configuration: training step time, peak memory, whole-body inference.

Trains a few steps of the paper's SwinUNETR (fs48, 96³, batch 2, AMP, DiceCE, Adam) on random
patches and runs body-skipping sliding-window inference (ROI 96³, overlap 0.5, uniform blending,
sw_batch 4) on a demo-size (3 mm) and a paper-size (1.5 mm) synthetic whole-body volume. Prints
seconds per step, peak GPU memory (GiB) and seconds per volume. Run by ``benchmarks/gpu_check.sh``;
``--device cpu --quick`` checks the code path on a CPU machine with tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from monai.losses import DiceCELoss

from sapkit.config import load_config
from sapkit.inference.sliding_window import predict_probabilities
from sapkit.networks.factory import build_model
from sapkit.io.run_record import library_versions


def _body_volume(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A (2, X, Y, Z) float32 volume in [0, 1]: an elliptic torso + two legs in a wide field of view."""
    x, y, z = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    torso = (x / 0.55) ** 2 + (y / 0.6) ** 2 < 1
    legs = ((np.abs(x) - 0.25) / 0.18) ** 2 + (y / 0.4) ** 2 < 1
    body = np.where(z > -0.1, torso, legs)
    image = np.zeros((2, *shape), np.float32)
    image[:, body] = rng.uniform(0.2, 1.0, size=(2, int(body.sum()))).astype(np.float32)
    return image


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="small sizes (feature size 12, ROI 64, batch 1) for a CPU check")
    args = parser.parse_args()
    device = torch.device(args.device)
    overrides = ({"model.feature_size": 12, "infer.roi": [64, 64, 64], "lesion.roi": [64, 64, 64], "lesion.batch_size": 1}
                 if args.quick else {})
    config = load_config("paper", overrides)
    roi = tuple(config.lesion.roi)
    versions = library_versions()
    print(json.dumps({k: versions[k] for k in ("torch", "monai", "cuda", "cudnn", "gpu")}))
    print(f"model: {config.model.backbone} feature_size {config.model.feature_size}, ROI {roi}, batch {config.lesion.batch_size}, AMP {device.type == 'cuda'}")

    model = build_model(config.model, 2, seed=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, weight_decay=1e-5)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, smooth_nr=1e-5, smooth_dr=1e-5)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    gen = torch.Generator().manual_seed(0)
    images = torch.rand((config.lesion.batch_size, 2, *roi), generator=gen).to(device)
    labels = (torch.rand((config.lesion.batch_size, 1, *roi), generator=gen) > 0.97).long().to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    warmup = 0 if args.quick else 2
    for step in range(args.steps + warmup):
        _sync(device)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            loss = loss_fn(model(images).float(), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        _sync(device)
        if step >= warmup:  # the first steps include cuDNN autotuning
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    print(f"training: {np.median(times):.3f} s/step (median of {len(times)}), peak GPU memory {peak:.1f} GiB, loss {loss.item():.3f}")

    rng = np.random.default_rng(0)
    sizes = {"demo (3 mm)": (96, 64, 200), "paper (1.5 mm)": (320, 200, 1000)}
    if args.quick:
        sizes = {"demo (quick)": (64, 64, 96)}
    for name, shape in sizes.items():
        image = _body_volume(shape, rng)
        for skip in (False, True):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            prob = predict_probabilities(model, image, roi=tuple(config.infer.roi), overlap=config.infer.overlap,
                                         blend="constant", sw_batch_size=config.infer.sw_batch_size,
                                         skip_background=skip, device=device, amp=True)
            _sync(device)
            seconds = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            mode = "body-skipping" if skip else "full-volume"
            print(f"inference {name} {shape}: {mode} {seconds:.1f} s/volume, peak GPU memory {peak:.1f} GiB, "
                  f"output {prob.shape} {prob.dtype}")


if __name__ == "__main__":
    main()
