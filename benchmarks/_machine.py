"""The one line each benchmark prints first: interpreter, machine, cores and current load."""

from __future__ import annotations

import os
import platform


def machine_line() -> str:
    """``python 3.11.7 · x86_64 · 2 CPUs · load average 0.12`` (1-minute load, to judge a noisy run)."""
    return (f"python {platform.python_version()} · {platform.machine()} · {os.cpu_count()} CPUs · "
            f"load average {os.getloadavg()[0]:.2f}")
