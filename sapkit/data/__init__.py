"""Stage 00 — data: manifest, cases, fingerprint, patient splits, preparation, intensity scaling,
augmentation and the synthetic phantom cohorts (``phantom``).
"""
