"""Reporting runs and sweeps, one job per module: the headline metrics (metrics), how numbers
are written (formatting), PCA's counterpart of a metric (counterparts), a sweep folder's jobs as
rows (collect), seed groups (groups), the tables (tables), published figures and the "beaten"
verdict (verdicts), the sweep's figure (plots), a sweep of an older ae_lab (older), the summary
and its command line (report) and the block a run ends with (run_end)."""
