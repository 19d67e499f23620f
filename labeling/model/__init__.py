"""Models on the data: runs of the fixed model, the bring-your-own training command, comparison of two
runs, and error analysis by slice.

Imports the layers below it (quality, annotate, data, platform).
"""
