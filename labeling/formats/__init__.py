"""Import and export formats.

Readers turn a source (a folder, a Label Studio export, a Common Voice TSV, …) into an
:class:`~labeling.formats.base.ImportPlan`; :func:`labeling.importer.import_plan` stores it.
Writers take the export frame described in :mod:`labeling.formats.base` and write files.
"""
