"""The machine a run computed on: CPU model, the instruction set torch dispatches to, threads, numerics settings.

Training on a CPU is deterministic on one machine but not across CPUs: the libraries that do the
arithmetic (ATen's vectorised kernels, oneDNN convolutions, MKL BLAS, OpenBLAS, numpy) choose code
paths by the instruction sets the CPU offers (AVX-512 vs AVX2), the rounding differs in the last
bits, and training amplifies it. So every run records where it ran (``versions.json`` →
``"machine"``, the model card, the README block), and :data:`PINNED_ISA_ENV` names the variables
that hold those libraries to AVX2 (``docs/reproducibility.md``). :func:`source_commit` records which
code ran (``versions.json`` → ``"commit"``, shown in ``report.html``).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any, MutableMapping

__all__ = ["NUMERICS_ENV_VARS", "PINNED_ISA_ENV", "cpu_model", "cpu_isa", "machine_info", "machine_summary", "pin_isa",
           "source_commit"]

# Environment variables that change which kernels run or how many threads share a reduction.
NUMERICS_ENV_VARS = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY",
    "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "NPY_DISABLE_CPU_FEATURES", "GLIBC_TUNABLES",
    "CUBLAS_WORKSPACE_CONFIG",
)

# Hold every library that does the arithmetic to AVX2 (any x86-64 CPU of the last decade has it).
# Read when each library initialises: set them before torch is imported (a new process).
PINNED_ISA_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",   # ATen's vectorised CPU kernels (torch.backends.cpu.get_cpu_capability())
    "ONEDNN_MAX_CPU_ISA": "AVX2",    # oneDNN convolutions and matmuls
    "MKL_CBWR": "AVX2,STRICT",       # MKL conditional numerical reproducibility, strict mode
    "OPENBLAS_CORETYPE": "Haswell",  # OpenBLAS kernels (numpy/scipy wheels)
}

_ISA_FLAGS = ("avx512f", "avx2", "fma", "avx", "sse4_2")


def _cpuinfo() -> dict[str, str]:
    """The first processor block of ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            block = f.read().split("\n\n", 1)[0]
    except OSError:
        return {}
    out = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def cpu_model() -> str:
    """The CPU's marketing name, e.g. ``AMD EPYC 7B13`` (``platform.processor()`` where /proc is absent)."""
    info = _cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_isa() -> str:
    """The widest of AVX-512F, AVX2, FMA, AVX, SSE4.2 the CPU reports (``unknown`` off Linux x86)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return next((f.upper().replace("AVX512F", "AVX-512") for f in _ISA_FLAGS if f in flags), "unknown")


def machine_info() -> dict[str, Any]:
    """CPU model and vendor, ISA, the capability torch dispatches to, thread counts and numerics variables.

    Keys: ``cpu_model``, ``cpu_vendor``, ``cpu_isa``, ``cpu_capability`` (ATen's, e.g. ``AVX512``),
    ``logical_cpus``, ``torch_threads``, ``torch_interop_threads``, ``numerics_env`` (the set
    variables of :data:`NUMERICS_ENV_VARS`), ``isa_pinned`` (all of :data:`PINNED_ISA_ENV` set as pinned).
    """
    import torch

    env = {k: os.environ[k] for k in NUMERICS_ENV_VARS if k in os.environ}
    return {
        "cpu_model": cpu_model(),
        "cpu_vendor": _cpuinfo().get("vendor_id", platform.machine()),
        "cpu_isa": cpu_isa(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "numerics_env": env,
        "isa_pinned": all(env.get(k) == v for k, v in PINNED_ISA_ENV.items()),
    }


def machine_summary(info: dict[str, Any]) -> str:
    """One line for tables and cards: ``Intel(R) Xeon(R) Processor (AVX-512; torch kernels AVX2, 2 threads, ISA pinned)``."""
    if not info:
        return "machine not recorded"
    pinned = ", ISA pinned to AVX2" if info.get("isa_pinned") else ""
    return (f"{info.get('cpu_model', 'unknown CPU')} ({info.get('cpu_isa', '?')}; torch kernels "
            f"{info.get('cpu_capability', '?')}, {info.get('torch_threads', '?')} threads{pinned})")


def pin_isa(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :data:`PINNED_ISA_ENV` in ``environ`` (default ``os.environ``) where the user set nothing else.

    Takes effect in processes started afterwards (notebook kernels, workers) and in this one for the
    libraries that read their variable at first use (ATen, oneDNN, MKL) — as long as no tensor
    operation ran yet. Returns the variables it set.
    """
    environ = os.environ if environ is None else environ
    added = {k: v for k, v in PINNED_ISA_ENV.items() if k not in environ}
    environ.update(added)
    return added


def source_commit() -> str:
    """The git commit of the sapkit checkout in use (12 hex digits, ``+ uncommitted changes`` when tracked
    files differ from it); ``""`` when sapkit is not run from a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists() or not (root / "sapkit").is_dir():
        return ""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    if head.returncode != 0:
        return ""
    return head.stdout.strip() + (" + uncommitted changes" if dirty.returncode == 0 and dirty.stdout.strip() else "")
