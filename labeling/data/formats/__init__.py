"""Import and export formats.

Readers turn a source (a folder, a Label Studio export, a Common Voice TSV, …) into an
:class:`~labeling.data.formats.base.ImportPlan`; :func:`labeling.data.importer.import_plan` stores it.
Writers take the export frame described in :mod:`labeling.data.formats.base` and write files.
"""
