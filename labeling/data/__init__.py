"""The project's data: projects and their settings, clips with their metadata and queries, import
(with :mod:`labeling.data.formats`), export, labels import, the written conventions, dataset versions,
checks and their fixes, augmentation, missing audio, and which clips are held back from datasets.

Imports only :mod:`labeling.platform`.
"""
