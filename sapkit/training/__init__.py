"""Stages 02–04 — training: the fit loop (``engine``), the three tasks (skeleton, SSL, lesion),
patch samplers, DDP placement, cross-validated fine-tuning and model cards.
"""
