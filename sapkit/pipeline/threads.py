"""Thread budgets for parallel work on one machine: ``N`` workers on ``C`` cores get ``max(1, C // N)`` threads each.

torch (OpenMP), BLAS and ITK each start one thread per core by default. Several such processes at
once — ``sapkit sweep --jobs N``, a local job array (``--executor local``, ``array_parallelism``
elements at a time), ``sapkit preprocess --jobs N`` — then run more busy threads than there are
cores, and OpenMP's spinning threads slow each other down far beyond the fair share: on a 2-core
machine, two demo fine-tunings at once took 190 s per epoch instead of 6 s. Inside
:func:`thread_budget` every worker started (and every Jupyter kernel those start) inherits the
variables of :data:`THREAD_VARIABLES`; a variable the user already set is left as it is.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["THREAD_VARIABLES", "threads_per_worker", "thread_budget"]

#: Environment variables that cap the threads of OpenMP (torch), MKL, OpenBLAS and ITK (SimpleITK).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """Threads each of ``workers`` parallel processes may use on ``cpus`` cores (default: this process's).

    Examples
    --------
    >>> threads_per_worker(2, cpus=2), threads_per_worker(3, cpus=16), threads_per_worker(8, cpus=4)
    (1, 5, 1)
    """
    return max(1, int(cpus or _cpus()) // max(1, int(workers)))


@contextlib.contextmanager
def thread_budget(workers: int, cpus: int | None = None) -> Iterator[dict[str, str]]:
    """Set :data:`THREAD_VARIABLES` for the processes started inside the block; restore them after.

    Nothing changes for one worker or for variables already set. Yields the variables it set.

    Examples
    --------
    >>> import os
    >>> with thread_budget(2, cpus=4) as set_here:
    ...     os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS") == set_here.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
    True
    """
    if int(workers) <= 1:
        yield {}
        return
    value = str(threads_per_worker(workers, cpus))
    set_here = {k: value for k in THREAD_VARIABLES if k not in os.environ}
    os.environ.update(set_here)
    try:
        yield set_here
    finally:
        for key in set_here:
            os.environ.pop(key, None)
