"""What a ``pg_dump --format=custom`` archive would run: :func:`read_toc` and :func:`unexpected_entries`.

``pg_restore`` runs the SQL an archive carries, whatever it is: a crafted archive can hold a
function, or a ``COPY … FROM PROGRAM`` in place of a table's ``COPY … FROM stdin``, and restoring it
with a privileged connection runs that program on the database server. So before Earmark restores
an archive it reads the archive's table of contents (every entry's type, name, SQL and ``COPY``
statement, without reading the data) and compares it with that of Earmark's own schema at the same
revision; any entry that is not exactly one of those is refused.

The table of contents is read as ``pg_restore`` reads it (``ReadHead``/``ReadToc`` in PostgreSQL's
``pg_backup_archiver.c``), for archive versions 1.12 to 1.16 (PostgreSQL 9.5 to 17).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"PGDMP"
_FORMAT_CUSTOM = 1
#: Entries whose SQL is never run by a restore without ``--create`` (Earmark never passes it).
NOT_RESTORED = frozenset({"DATABASE", "DATABASE PROPERTIES"})
_SETVAL = re.compile(r"SELECT pg_catalog\.setval\('public\.([a-z0-9_]+)', \d{1,19}, (?:true|false)\);\n")


class ArchiveRefused(ValueError):
    """The archive is not one Earmark restores; the message says why."""


@dataclass(frozen=True)
class TocEntry:
    dump_id: int
    desc: str  # TABLE, TABLE DATA, INDEX, FUNCTION…
    tag: str  # the object's name ("clips", "resolutions tr_resolutions_mark_clip"…)
    namespace: str
    defn: str  # the SQL run to create it
    copy_stmt: str  # TABLE DATA: the COPY statement run before its rows

    @property
    def key(self) -> tuple[str, str]:
        return self.desc, self.tag

    def describe(self) -> str:
        where = f"{self.namespace}." if self.namespace else ""
        return f"{self.desc} {where}{self.tag}"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.int_size = 4
        self.off_size = 8

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ArchiveRefused("its table of contents is cut short or damaged")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.bytes(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.bytes(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        n = self.int()
        if n < 0:
            return None
        if n > 64 * 2**20:
            raise ArchiveRefused("its table of contents holds an entry of implausible size")
        return self.bytes(n).decode("utf-8", errors="replace")

    def offset(self) -> None:
        self.byte()  # whether the data's position is known
        self.bytes(self.off_size)


def read_toc(path: Path, *, max_toc_bytes: int = 256 * 2**20) -> list[TocEntry]:
    """The entries of a custom-format archive's table of contents (the data is not read)."""
    with Path(path).open("rb") as fh:
        data = fh.read(max_toc_bytes)
    r = _Reader(data)
    if r.bytes(5) != MAGIC:
        raise ArchiveRefused("it is not a pg_dump custom-format archive")
    version = (r.byte(), r.byte(), r.byte())
    if not (1, 12, 0) <= version <= (1, 16, 255):
        raise ArchiveRefused(
            f"its archive version {'.'.join(map(str, version))} is not one Earmark reads (1.12 to 1.16)"
        )
    r.int_size, r.off_size = r.byte(), r.byte()
    if not (1 <= r.int_size <= 8 and 1 <= r.off_size <= 8):
        raise ArchiveRefused("its table of contents is damaged")
    if r.byte() != _FORMAT_CUSTOM:
        raise ArchiveRefused("it is not in pg_dump's custom format (--format=custom)")
    if version >= (1, 15, 0):
        r.byte()  # compression algorithm
    else:
        r.int()  # compression level
    for _ in range(7):  # the time it was made
        r.int()
    r.str()  # database name
    r.str()  # server version
    r.str()  # pg_dump version
    count = r.int()
    if not 0 <= count <= 10_000_000:
        raise ArchiveRefused("its table of contents is damaged")
    entries = []
    for _ in range(count):
        dump_id = r.int()
        r.int()  # had a data dumper
        r.str()  # table oid
        r.str()  # oid
        tag = r.str() or ""
        desc = r.str() or ""
        r.int()  # section
        defn = r.str() or ""
        r.str()  # drop statement
        copy_stmt = r.str() or ""
        namespace = r.str() or ""
        r.str()  # tablespace
        r.str()  # table access method
        if version >= (1, 16, 0):
            r.int()  # relkind
        r.str()  # owner
        r.str()  # "false": without OIDs
        while r.str() is not None:  # dependencies, ended by a null
            pass
        r.offset()  # where its data is
        entries.append(TocEntry(dump_id, desc, tag, namespace, defn, copy_stmt))
    return entries


def listed_ids(listing: str) -> list[tuple[int, str]]:
    """``(dump id, type)`` of each entry in ``pg_restore --list`` output, to check :func:`read_toc`."""
    out = []
    for line in listing.splitlines():
        match = re.match(r"^(\d+); \d+ \d+ (.+)$", line)
        if match:
            out.append((int(match.group(1)), match.group(2)))
    return out


def unexpected_entries(
    archive: Iterable[TocEntry], reference: Iterable[TocEntry], *, schema: str
) -> list[str]:
    """The archive's entries that are not exactly the reference's (Earmark's own schema at the same
    revision, dumped from the schema named ``schema``), described for a person; none means the archive
    holds Earmark's schema and data only."""
    expected = {}
    for e in reference:
        expected[e.key] = (
            e.namespace.replace(schema, "public"),
            e.defn.replace(f"{schema}.", "public."),
            e.copy_stmt.replace(f"{schema}.", "public."),
        )
    sequences = {e.tag for e in reference if e.desc == "SEQUENCE"}
    wrong = []
    for e in archive:
        if e.desc in NOT_RESTORED:
            continue
        if e.desc == "SEQUENCE SET":
            match = _SETVAL.fullmatch(e.defn)
            if e.namespace != "public" or match is None or match.group(1) not in sequences or e.copy_stmt:
                wrong.append(e.describe())
            continue
        if expected.get(e.key) != (e.namespace, e.defn, e.copy_stmt):
            wrong.append(e.describe())
    return wrong
