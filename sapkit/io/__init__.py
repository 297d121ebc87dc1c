"""Shared file services: strict NIfTI reading/writing, atomic writes, checkpoints, and the run-folder paths object.

Modules: ``nifti`` (NIfTI in/out, geometry), ``atomic`` (crash-safe writes through a hidden
staging folder), ``checkpoints`` (save/load with ``weights_only=True``), ``run_paths``
(:class:`~sapkit.io.run_paths.RunDir`: every path of the run-folder contract).
"""
