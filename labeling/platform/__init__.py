"""What every stage stands on: settings, the workspace (database and audio store), columnar reads,
progress, the audit log, users and sessions, and the background job runner.

Nothing here knows about clips, labels or models; every other sub-package may import it.
"""
