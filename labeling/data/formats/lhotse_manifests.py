"""lhotse manifests: :func:`recording_dict` and :func:`supervision_dict` build one line of each
(``write_lhotse`` in :mod:`labeling.data.formats.writers` writes them).

lhotse (the speech data library of the k2/icefall recipes) describes a corpus as a ``RecordingSet``
(``recordings.jsonl.gz``: where each audio file is and how long) and a ``SupervisionSet``
(``supervisions.jsonl.gz``: what is said in which stretch of which recording, by whom). Both are
gzipped JSON Lines, one object per line, and ``lhotse.load_manifest`` tells them apart by their
fields: a line with ``sources`` is a ``Recording``, one without it and without ``type`` a
``SupervisionSegment``. Every field of a line must be a field of that class, or lhotse refuses the
file, so Earmark's own data goes where lhotse keeps what it does not know itself: the supervision's
``custom`` dict.

A recording: ``id`` (the clip id as text), ``sources`` (one ``file`` source with every channel),
``sampling_rate``, ``num_samples`` and ``duration`` (``num_samples / sampling_rate``, which lhotse's
validator checks). A supervision covers its whole recording (``start`` 0, the same ``duration``,
``channel`` 0 or the list of channels), with ``text`` (the final transcript), ``speaker``,
``gender`` and ``language`` from the clip's metadata, and ``custom``: ``label``, ``tags``,
``split``, ``original_name``, ``sha256``, ``clip_id`` and the other metadata keys (a key that would
clash with those gets a ``metadata.`` prefix).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: The file names of a split's manifests, as lhotse's own recipes write them.
RECORDINGS = "recordings.jsonl.gz"
SUPERVISIONS = "supervisions.jsonl.gz"
#: Metadata keys that are fields of a lhotse ``SupervisionSegment`` of their own.
SUPERVISION_FIELDS = ("speaker", "gender", "language")
#: Keys Earmark puts in ``custom`` itself.
CUSTOM_KEYS = ("label", "tags", "split", "original_name", "sha256", "clip_id")


def recording_dict(
    recording_id: str, source: str, *, sampling_rate: int, duration_s: float, channels: int
) -> dict[str, Any]:
    """One ``Recording`` line: a single audio file holding every channel."""
    num_samples = round(float(duration_s) * int(sampling_rate))
    return {
        "id": recording_id,
        "sources": [{"type": "file", "channels": list(range(max(int(channels), 1))), "source": source}],
        "sampling_rate": int(sampling_rate),
        "num_samples": num_samples,
        "duration": num_samples / int(sampling_rate),
    }


def supervision_dict(
    recording: Mapping[str, Any],
    *,
    text: str | None,
    metadata: Mapping[str, str],
    custom: Mapping[str, Any],
) -> dict[str, Any]:
    """One ``SupervisionSegment`` line covering the whole ``recording`` (a :func:`recording_dict`).

    ``custom`` holds Earmark's own keys (:data:`CUSTOM_KEYS`); the metadata keys that are no
    supervision field join it. Empty values are left out, as lhotse leaves out its ``None`` fields.
    """
    channels: Sequence[int] = recording["sources"][0]["channels"]
    line: dict[str, Any] = {
        "id": recording["id"],
        "recording_id": recording["id"],
        "start": 0.0,
        "duration": recording["duration"],
        "channel": channels[0] if len(channels) == 1 else list(channels),
    }
    if text is not None:
        line["text"] = text
    for key in SUPERVISION_FIELDS:
        if metadata.get(key) is not None:
            line[key] = metadata[key]
    extra = {k: v for k, v in custom.items() if v is not None and v != []}
    for key, value in metadata.items():
        if key in SUPERVISION_FIELDS:
            continue
        clash = key in CUSTOM_KEYS or key.startswith("metadata.")
        extra[f"metadata.{key}" if clash else key] = value
    if extra:
        line["custom"] = extra
    return line
