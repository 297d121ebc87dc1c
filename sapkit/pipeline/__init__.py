"""Orchestration: the notebook series headless (``reproduce``), parameter sweeps, the HTML report
and the README results block.
"""
