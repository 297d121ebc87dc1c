"""A second writer into a held run folder: how fast it is refused, against starting the CLI at all.

A holder process takes the run-folder lock (:class:`sapkit.io.run_paths` folder,
:mod:`sapkit.io.run_lock`) and keeps it. sapkit's figure is the wall time of a second writer —
``sapkit split … --run-dir RUN`` in a fresh interpreter — from start to its one-line refusal. The
peer is the floor of any CLI answer: ``sapkit --help`` in a fresh interpreter (Python start-up and
the command-line imports, no lock). The issue's target: refused within 2 s; the ratio shows what the
lock itself adds.

Usage::

    python benchmarks/bench_run_lock.py              # ~20 s
    python benchmarks/bench_run_lock.py --repeats 10

Prints the environment, median and max seconds of both commands and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import machine_line  # benchmarks/_machine.py, next to this script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sapkit.data.phantom import generate_cohorts  # noqa: E402
from sapkit.config import load_config  # noqa: E402

_HOLDER = ("import sys, time\nfrom sapkit.io.run_lock import RunLock\nlock = RunLock(sys.argv[1]).acquire()\n"
           "print('locked', flush=True)\ntime.sleep(600)\n")
_CLI = [sys.executable, "-c", "from sapkit.cli import main; raise SystemExit(main())"]


def _timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    return time.perf_counter() - start, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        config = load_config("smoke")
        generate_cohorts(data, config.synth, progress=False)
        run = Path(tmp) / "run"
        holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(run)], stdout=subprocess.PIPE, text=True, cwd=REPO)
        try:
            assert holder.stdout.readline().strip() == "locked"
            _timed(_CLI + ["--help"])  # warm the file cache once
            peer, refused = [], []
            for _ in range(args.repeats):
                peer.append(_timed(_CLI + ["--help"])[0])
                seconds, done = _timed(_CLI + ["split", str(data), "--profile", "smoke", "--run-dir", str(run)])
                if done.returncode != 1 or f"PID {holder.pid}" not in done.stderr:
                    raise SystemExit(f"the second writer was not refused as expected:\n{done.stderr}")
                refused.append(seconds)
        finally:
            holder.kill()
            holder.wait()
    print(f"\nsecond writer refused (sapkit split into a held run folder): median {statistics.median(refused):.2f} s, "
          f"max {max(refused):.2f} s over {args.repeats}")
    print(f"peer: `sapkit --help` in a fresh interpreter:                 median {statistics.median(peer):.2f} s, "
          f"max {max(peer):.2f} s")
    print(f"ratio refused / --help: {statistics.median(refused) / statistics.median(peer):.2f}x   "
          f"(target: refused within 2 s → {'met' if max(refused) <= 2.0 else 'NOT met'})")


if __name__ == "__main__":
    main()
