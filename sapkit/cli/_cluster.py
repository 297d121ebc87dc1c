"""The cluster options of every command that submits work: one parser, one set of defaults.

``sapkit sweep`` and ``sapkit preprocess`` run job arrays (``--executor local|slurm``, one element
per parameter set or scan: :func:`sapkit.jobs.executors.run_array`); ``sapkit train --print-slurm``
prints one multi-node batch script (:mod:`sapkit.training.launch`). Both ask SLURM for the same
things with the same options and the same defaults — the fields of
:class:`sapkit.jobs.executors.Resources`: ``--partition``, ``--account``, ``--qos``,
``--mem-gb`` (64), ``--time-min`` (1440) and ``--setup``. What only one of them has:

- job arrays: ``--executor``, ``--resume``, ``--no-wait``, ``--gpus`` (SLURM none; locally every GPU of the
  machine, :mod:`sapkit.jobs.gpus`), ``--cpus`` (2) per
  element and ``--array-parallelism`` (4); a grid file's ``resources:`` section sits between the
  defaults and the options (options win);
- ``--print-slurm``: ``--nodes`` (1), ``--gpus-per-node`` (1), ``--procs-per-node`` (the GPUs, or 1),
  ``--cpus-per-node`` (8) and ``--rdzv-port`` (29500) — the shape of a training node, not of an element.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

from sapkit.jobs.executors import EXECUTORS, Resources

__all__ = ["add_cluster_arguments", "resources_from_args"]

_DEFAULT = Resources()


def add_cluster_arguments(parser: argparse.ArgumentParser, *, array: bool) -> None:
    """Add the cluster options: a job array's (``array=True``) or ``sapkit train --print-slurm``'s.

    For a job array every resource option defaults to None ("not given"), so
    :func:`resources_from_args` can lay the given ones over a grid file's ``resources:``; for
    ``--print-slurm`` they default to the values of :class:`~sapkit.jobs.executors.Resources`.
    """
    if array:
        group = parser.add_argument_group("job array (submitit)")
        group.add_argument("--executor", choices=EXECUTORS, default=None,
                           help="run one job per element with submitit: 'local' (this machine) or 'slurm' (sbatch array)")
        group.add_argument("--resume", action="store_true",
                           help="with --executor: resubmit only the elements that failed or never ran")
        group.add_argument("--no-wait", dest="wait", action="store_false",
                           help="slurm: return after submitting (check later with --resume or the states.csv)")
    else:
        group = parser.add_argument_group("multi-node (print a SLURM batch script instead of training)")
        group.add_argument("--print-slurm", action="store_true",
                           help="print an sbatch script that runs this command with torchrun on --nodes nodes")
        group.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
        group.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per node (default 1; 0 = CPU, gloo)")
        group.add_argument("--procs-per-node", type=int, default=None,
                           help="ranks per node (default: --gpus-per-node, or 1 without GPUs)")
        group.add_argument("--cpus-per-node", type=int, default=8, help="CPU cores per node (default 8)")
        group.add_argument("--rdzv-port", type=int, default=29500, help="rendezvous TCP port on the first node")
    per = "element" if array else "node"

    def default(name: str):
        return None if array else getattr(_DEFAULT, name)

    group.add_argument("--partition", default=None, help="SLURM partition")
    group.add_argument("--account", default=None, help="SLURM account")
    group.add_argument("--qos", default=None, help="SLURM quality of service")
    if array:
        group.add_argument("--gpus", type=int, default=None,
                           help="GPUs per element (default: slurm none; local every GPU of this machine for each "
                                "element; --gpus 1 gives each element its own, round robin; 0 = CPU)")
        group.add_argument("--cpus", type=int, default=None, help=f"CPU cores per element (default {_DEFAULT.cpus})")
    group.add_argument("--mem-gb", type=float, default=default("mem_gb"),
                       help=f"memory per {per} in GB (default {_DEFAULT.mem_gb:g})")
    group.add_argument("--time-min", type=int, default=default("time_min"),
                       help=f"time limit per {'element' if array else 'job'} in minutes (default {_DEFAULT.time_min})")
    if array:
        group.add_argument("--array-parallelism", type=int, default=None,
                           help=f"elements running at once (default {_DEFAULT.array_parallelism})")
    group.add_argument("--setup", action="append", default=None, metavar="LINE",
                       help=f"shell line run before each {per}'s command, e.g. 'module load cuda' (repeatable)")


def resources_from_args(args: argparse.Namespace, base: Resources | None = None) -> Resources:
    """``base`` (e.g. a grid file's ``resources:`` section) with the options given on the command line."""
    base = base or Resources()
    given = {f.name: getattr(args, f.name) for f in fields(Resources) if getattr(args, f.name, None) is not None}
    return replace(base, **given)
