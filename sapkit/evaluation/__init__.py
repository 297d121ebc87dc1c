"""Stage 05 — evaluation: cohort evaluation of a run, statistics (bootstrap CIs, paired tests, ICC)
and Table 1.
"""
