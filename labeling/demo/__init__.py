"""The demo project: its synthesised corpus, scripted annotators and production traffic.

The top layer of :mod:`labeling`'s services; only the composition root (CLI, API, job kinds) is above it.
"""
