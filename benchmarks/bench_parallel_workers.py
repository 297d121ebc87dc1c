"""Two training processes sharing the cores: OpenMP's default spinning vs ``OMP_WAIT_POLICY=PASSIVE``.

What ``sapkit sweep --jobs N``, local job arrays and ``sapkit preprocess --jobs N`` do to their workers
(:mod:`sapkit.jobs.threads`). Each worker runs ``--steps`` Adam steps of the demo profile's UNet on
a fixed batch (4 × 2 × 32³) with torch's default thread count. Printed: seconds of one worker alone
(the peer), of two at once with the default wait policy and with the passive one, the slowdowns, and
whether every run ends with the same weights (thread counts are untouched, so they must).

Usage::

    python benchmarks/bench_parallel_workers.py          # ~1-2 min on 2 cores
    python benchmarks/bench_parallel_workers.py --steps 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from _machine import machine_line  # benchmarks/_machine.py, next to this script

REPO = Path(__file__).resolve().parents[1]

_WORKER = """
import sys, time, torch
from sapkit.config import load_config
from sapkit.networks.factory import build_model
torch.manual_seed(0)
model = build_model(load_config("demo").model, 2, seed=0)
opt = torch.optim.Adam(model.parameters(), 1e-3)
x = torch.randn(4, 2, 32, 32, 32)
start = time.perf_counter()
for _ in range(int(sys.argv[1])):
    opt.zero_grad()
    model(x).mean().backward()
    opt.step()
seconds = time.perf_counter() - start
with torch.no_grad():
    checksum = sum(float(p.double().sum()) for p in model.parameters())
print(f"{seconds:.3f} {checksum!r} {torch.get_num_threads()}")
"""


def _run(n: int, steps: int, policy: str | None) -> list[tuple[float, str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(steps)], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    out = []
    for p in procs:
        seconds, checksum, threads = p.communicate()[0].split()
        out.append((float(seconds), checksum, threads))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(machine_line())
    _run(1, 1, None)  # warm the file cache
    alone = _run(1, args.steps, None)
    default = _run(2, args.steps, None)
    passive = _run(2, args.steps, "PASSIVE")
    base = alone[0][0]
    print(f"\n{args.steps} training steps, demo UNet, torch threads per worker: {alone[0][2]}")
    print(f"one worker alone (peer):            {base:7.2f} s")
    for name, runs in (("two at once, default waiting", default), ("two at once, OMP_WAIT_POLICY=PASSIVE", passive)):
        worst = max(r[0] for r in runs)
        print(f"{name + ':':36s}{worst:7.2f} s each (slowest)   {worst / base:6.2f}x the lone worker")
    checksums = {r[1] for r in alone + default + passive}
    print(f"same final weights in every run: {len(checksums) == 1}")


if __name__ == "__main__":
    main()
