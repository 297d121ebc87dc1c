"""Does pinning the instruction sets make training bit-identical across x86-64 CPUs, and what does it cost?

Trains the same smoke lesion model (scratch init, fold 0, ``lesion.epochs`` 3 by default) in fresh
processes under four environments and compares the final weights tensor by tensor:

- ``default``: whatever the libraries pick on this CPU (AVX-512 where present);
- ``default+limits``: the same with the instruction sets of an AVX2-only machine imposed from outside
  (``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``, glibc's hardware capabilities, numpy's dispatch):
  how far a CPU without AVX-512 would end from ``default``;
- ``pinned``: :data:`sapkit.io.machine.PINNED_ISA_ENV` (ATen, oneDNN, MKL and OpenBLAS pinned to AVX2);
- ``pinned+limits``: ``pinned`` plus the same outside limits. If ``pinned`` and ``pinned+limits``
  agree bit for bit, the pinned arithmetic no longer depends on what the CPU offers above AVX2.

Each environment runs ``--repeats`` times (the first run of each is also checked against a second
``default`` run: the same environment must give max |ΔW| = 0). Prints max |ΔW| between environments
and the median training time of each against ``default``.

    python benchmarks/bench_reproducibility.py [--epochs 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

from sapkit.io.machine import PINNED_ISA_ENV, machine_info  # noqa: E402

# An AVX2-only CPU imposed from outside on the libraries that would use AVX-512 here.
AVX2_LIMITS = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512DQ,-AVX512BW,-AVX512VL,-AVX512CD,-AVX512ER,-AVX512PF",
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR",
}
ENVIRONMENTS = {
    "default": {},
    "default+limits": AVX2_LIMITS,
    "pinned": dict(PINNED_ISA_ENV),
    "pinned+limits": {**AVX2_LIMITS, **PINNED_ISA_ENV},
}
_CLEARED = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "GLIBC_TUNABLES",
            "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")


def _sapkit(*args: str, env: dict[str, str] | None = None, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("sapkit")), *args], cwd=cwd, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "lesion" / "scratch" / "fold_0" / "model_final.pt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"] if "state_dict" in ckpt else ckpt["model"]


_STEP_SCRIPT = """
import sys, time, torch
from sapkit.config import load_config
from sapkit.networks.factory import build_model
cfg = load_config(sys.argv[1])
model = build_model(cfg.model, 2, seed=0)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
roi, batch = list(cfg.lesion.roi), cfg.lesion.batch_size
x = torch.randn(batch, 2, *roi, generator=torch.Generator().manual_seed(0))
y = (torch.rand(batch, 2, *roi, generator=torch.Generator().manual_seed(1)) > 0.5).float()
times = []
for step in range(int(sys.argv[2])):
    t = time.perf_counter()
    opt.zero_grad()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
    loss.backward()
    opt.step()
    times.append(time.perf_counter() - t)
print(min(times[3:]))
"""


def step_seconds(env: dict[str, str], *, profile: str = "demo", steps: int = 15) -> float:
    """Fastest training step (forward, backward, Adam) of the profile's lesion model on one batch,
    in a fresh process under ``env``: the fastest of many is what the CPU can do, whatever else runs."""
    out = subprocess.run([sys.executable, "-c", _STEP_SCRIPT, profile, str(steps)], env=env, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def max_abs_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest |a − b| over every floating-point tensor of two state dicts with the same keys."""
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(machine_line())
    info = machine_info()
    print(f"CPU {info['cpu_model']} · torch kernels {info['cpu_capability']} · ISA {info['cpu_isa']}")
    work = Path(tempfile.mkdtemp(prefix="sapkit-repro-"))
    base_env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    try:
        base = work / "base"
        _sapkit("synth", "--profile", "smoke", "--run-dir", str(base), cwd=work)
        _sapkit("split", "--profile", "smoke", "--run-dir", str(base), str(base / "data"), cwd=work)
        weights: dict[str, list[dict[str, torch.Tensor]]] = {}
        seconds: dict[str, list[float]] = {}
        for rep in range(args.repeats):  # interleaved so that load drifts hit every environment alike
            for name, extra in ENVIRONMENTS.items():
                run = work / f"{name}-{rep}"
                shutil.copytree(base, run)
                t = _sapkit("train", "lesion", "--init", "scratch", "--fold", "0", "--profile", "smoke",
                            "--run-dir", str(run), "-p", f"lesion.epochs={args.epochs}",
                            env={**base_env, **extra}, cwd=work)
                weights.setdefault(name, []).append(_weights(run))
                seconds.setdefault(name, []).append(t)
                print(f"  {name:15s} run {rep + 1}: {t:6.1f} s", flush=True)
        print(f"\nmax |ΔW| after {args.epochs} epochs (smoke lesion model, scratch, fold 0):")
        if args.repeats > 1:
            for name in ENVIRONMENTS:
                print(f"  {name:15s} vs itself (run 2): {max_abs_difference(weights[name][0], weights[name][1]):.3g}")
        pairs = [("default", "default+limits"), ("pinned", "pinned+limits"), ("default", "pinned")]
        for a, b in pairs:
            print(f"  {a:15s} vs {b:15s}: {max_abs_difference(weights[a][0], weights[b][0]):.3g}")
        steps: dict[str, list[float]] = {}
        for _ in range(args.repeats + 1):  # interleaved, fastest step of each process
            for name in ("default", "pinned"):
                steps.setdefault(name, []).append(step_seconds({**base_env, **ENVIRONMENTS[name]}))
        fast = {name: min(v) for name, v in steps.items()}
        from sapkit.config import load_config
        demo = load_config("demo").lesion
        print(f"\nfastest training step of the demo lesion model (batch {demo.batch_size}, "
              f"{'×'.join(map(str, demo.roi))} voxels), {args.repeats + 1} processes each:")
        for name, v in fast.items():
            print(f"  {name:15s} {v * 1000:7.1f} ms  {v / fast['default']:5.2f}x")
        ref = statistics.median(seconds["default"])
        print("\nmedian training time (process start to exit), ratio to default:")
        for name in ENVIRONMENTS:
            med = statistics.median(seconds[name])
            print(f"  {name:15s} {med:6.1f} s  {med / ref:5.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
