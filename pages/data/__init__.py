"""The Data section: overview, clips, import, export, versions and checks, project settings."""
