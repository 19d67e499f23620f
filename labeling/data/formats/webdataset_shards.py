"""WebDataset shards: :func:`sample_key` names a clip's files in a shard, :func:`sample_json` is the
JSON beside its audio, :class:`ShardPlan` decides where a new shard starts (``write_webdataset`` in
:mod:`labeling.data.formats.writers` writes the tars).

A WebDataset is a set of plain POSIX tar files read sequentially at training time. The files of one
sample share a key, the part of the name before its first dot (``00000017.wav``,
``00000017.json``), so a key holds no dot and the two files of a sample follow each other. Shards are
named ``<split>-000000.tar``, ``<split>-000001.tar``… so a trainer names a split with brace
expansion (``train-{000000..000003}.tar``); a shard is closed before it would grow past the shard
size, unless it holds no sample yet (one clip larger than a shard makes a shard of its own).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The default size a shard stays under, in bytes (WebDataset's authors suggest 100 MB-1 GB).
DEFAULT_SHARD_BYTES = 100 * 1000 * 1000
#: A tar member costs a 512-byte header and pads its data to 512 bytes; the archive ends in 1 KiB of
#: zeros (tarfile pads the whole archive to 10 KiB records, counted at the end).
TAR_BLOCK = 512
TAR_RECORD = 20 * TAR_BLOCK
_KEY_UNSAFE = re.compile(r"[^0-9A-Za-z_-]")


def sample_key(clip_id: Any, width: int = 8) -> str:
    """The sample's key: the clip id, zero-padded when it is a number, with nothing but letters,
    digits, ``_`` and ``-`` (a dot would end the key)."""
    text = str(clip_id)
    if text.isdigit():
        return text.zfill(width)
    return _KEY_UNSAFE.sub("_", text) or "_"


def audio_extension(name: str | None, fallback: str = "wav") -> str:
    """The audio member's extension, which WebDataset's decoders go by: the original file's."""
    if name and "." in name.rsplit("/", 1)[-1]:
        ext = name.rsplit(".", 1)[-1].lower()
        if ext and _KEY_UNSAFE.sub("", ext) == ext:
            return ext
    return fallback


def sample_json(
    *,
    clip_id: Any,
    sha256: str | None,
    original_name: str | None,
    duration_s: float | None,
    sample_rate: int | None,
    channels: int | None,
    split: str | None,
    label: str | None,
    transcript: str | None,
    tags: Sequence[str],
    metadata: Mapping[str, str],
) -> dict[str, Any]:
    """The JSON member of a sample: every field of the clip, ``None`` where it has no value."""
    return {
        "clip_id": clip_id,
        "sha256": sha256,
        "original_name": original_name,
        "duration_s": duration_s,
        "sample_rate": sample_rate,
        "channels": channels,
        "split": split,
        "label": label,
        "transcript": transcript,
        "tags": list(tags),
        "metadata": dict(metadata),
    }


def member_bytes(size: int) -> int:
    """What a member of ``size`` bytes adds to a tar: its header and its data padded to a block."""
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


@dataclass
class ShardPlan:
    """Where shards start: :meth:`fits` says whether a sample of ``size`` tar bytes still goes into
    the current shard; :meth:`add` counts it in."""

    limit: int = DEFAULT_SHARD_BYTES
    used: int = 0
    samples: int = 0

    def __post_init__(self) -> None:
        if self.limit < TAR_RECORD:
            raise ValueError(f"a shard holds at least {TAR_RECORD:,} bytes")

    def fits(self, size: int) -> bool:
        closed = -(-(self.used + size + 2 * TAR_BLOCK) // TAR_RECORD) * TAR_RECORD
        return self.samples == 0 or closed <= self.limit

    def add(self, size: int) -> None:
        self.used += size
        self.samples += 1

    def start(self) -> None:
        self.used = 0
        self.samples = 0
