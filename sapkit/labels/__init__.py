"""Stage 01 — skeleton labels: label maps, fine→SAP and TotalSegmentator mapping, QC tables,
and propagation of a labelled scan to a subject's repeat scans by registration.
"""
