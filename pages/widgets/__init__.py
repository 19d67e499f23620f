"""What every page shares: the workspace and sign-in, charts, plots, audio, job status, stored reports."""
