"""Job infrastructure below every stage: job arrays, parallel local workers, progress bars.

Modules: ``executors`` (job arrays on SLURM or this machine through submitit), ``threads``
(parallel local workers share the cores), ``progress`` (the one maker of progress bars, and
whether a person's browser watches). Preprocessing, data, inference, training, evaluation,
plotting and the pipeline use them; they import no stage (docs/design.md §2a).
"""
