"""Labeling: the queue that hands clips out, the annotations people submit, and review/adjudication.

Imports :mod:`labeling.data` and :mod:`labeling.platform`.
"""
