"""Synthetic whole-body MRI cohorts (T1 + DWI b1000) with skeleton and lesion labels.

No public whole-body MRI with bone-metastasis labels exists, so the kit generates seeded,
deterministic phantoms: body outline, fat, muscle, lungs, organs, spinal cord, lymph nodes and a
skeleton (C1–L5 with discs, sacrum, hip bones, femurs, humeri, scapulae, clavicles, sternum,
ribs) built from analytic shapes in mm and rasterised; site effects (scale, bias field, noise);
metastases inside bone and DWI-bright look-alikes outside it. The modules split the job:
``_shapes`` (primitives), ``_anatomy`` (geometry), ``_render`` (painting), ``_contrast`` (MR
intensities and scanner), ``_lesions`` (metastases and nodes), ``_cohort`` (subjects, repeat scans,
files and manifest).
"""

from __future__ import annotations

from sapkit.data.phantom._anatomy import SubjectParams, Tissue
from sapkit.data.phantom._cohort import (LESION_COLUMNS, Subject, SynthScan, generate_cohorts, is_generated, make_grid,
                                    make_scan, make_subject)
from sapkit.data.phantom._contrast import Site, make_sites
from sapkit.data.phantom._lesions import LESION_SITE_WEIGHTS
from sapkit.data.phantom._shapes import Grid

__all__ = ["generate_cohorts", "is_generated", "make_subject", "make_scan", "make_grid", "make_sites", "Subject", "SynthScan",
           "SubjectParams", "Site", "Grid", "Tissue", "LESION_COLUMNS", "LESION_SITE_WEIGHTS"]
