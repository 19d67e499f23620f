"""How good the labels are: the agreement service with its stored reports, and label issues.

Imports the layers below it (annotate, data, platform).
"""
