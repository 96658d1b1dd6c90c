"""Recording and reporting runs: job and metrics records, headline metrics, sweep summaries."""
