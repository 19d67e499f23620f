"""Pages of the platform itself: sign-in and background jobs."""
