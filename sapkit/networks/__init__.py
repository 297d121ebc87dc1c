"""Stages 02–04 — networks: the model factory (UNet, SwinUNETR) and weight transfer between tasks.
"""
