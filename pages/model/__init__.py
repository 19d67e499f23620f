"""The Model section: error analysis with its browser, runs and their comparison, training."""
