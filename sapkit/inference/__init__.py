"""Stages 04–05 — inference: whole-body sliding window with body skipping, prediction over a
manifest, and post-processing into lesion components.
"""
