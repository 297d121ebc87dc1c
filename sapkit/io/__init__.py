"""Shared file services: strict NIfTI reading/writing, atomic writes, checkpoints, and the run-folder paths object.

Modules: ``nifti`` (NIfTI in/out, geometry), ``checkpoints`` (save/load with ``weights_only=True``),
``run_paths`` (every path of the run-folder contract).
"""
