"""The Quality section: agreement and review."""
